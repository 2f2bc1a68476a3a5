"""The docs stay true: the CLI reference is the real --help, every setting is documented."""

from __future__ import annotations

import importlib.util
from dataclasses import fields
from pathlib import Path

from minidr.config import Config

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("generate_cli", ROOT / "docs" / "generate_cli.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cli_reference_is_up_to_date():
    expected = _generator().render()
    actual = (ROOT / "docs" / "cli.md").read_text()
    assert actual == expected, "docs/cli.md is stale: run `python docs/generate_cli.py`"


def test_every_command_has_help_text():
    from minidr.cli import COMMANDS

    text = _generator().render()
    for name in COMMANDS:
        assert f"## minidr {name}" in text
        assert "(not available in this build)" not in text.split(f"## minidr {name}")[1].split("## ")[0], name


def test_every_setting_is_documented():
    for sec in fields(Config):
        for f in fields(sec.default_factory):
            assert len(f.metadata.get("doc", "")) > 10, f"{sec.name}.{f.name} has no doc"
