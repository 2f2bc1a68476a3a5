"""Write docs/cli.md from the real ``--help`` of every command.

Run ``python docs/generate_cli.py`` after changing a command; tests/unit/test_docs.py
fails when docs/cli.md is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from minidr.cli import COMMANDS, cli


def render() -> str:
    out = ["# Command-line reference", "",
           "Generated from each command's `--help` by `docs/generate_cli.py`; do not edit by hand.", ""]
    ctx = click.Context(cli, info_name="minidr", terminal_width=88, max_content_width=88)
    out += ["```text", cli.get_help(ctx), "```", ""]
    for name in COMMANDS:
        cmd = cli.get_command(ctx, name)
        sub = click.Context(cmd, info_name=f"minidr {name}", parent=None, terminal_width=88, max_content_width=88)
        out += [f"## minidr {name}", "", "```text", cmd.get_help(sub), "```", ""]
    return "\n".join(out)


if __name__ == "__main__":
    target = Path(__file__).with_name("cli.md")
    target.write_text(render())
    print(f"wrote {target}", file=sys.stderr)
