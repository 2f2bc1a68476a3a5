"""The ``minidr`` command line: a thin layer over the Python API.

Each command lives in a small module of this package and is imported only when it runs,
so ``minidr --help`` is fast. A :class:`~minidr.errors.MinidrError` becomes one line on
stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import importlib
import sys

import click

from ..errors import MinidrError

# command name -> "module:attribute" within minidr.cli
COMMANDS = {
    "simulate": "simulate:simulate",
    "init": "repo:init",
    "ingest": "repo:ingest",
    "status": "repo:status",
    "calibs": "pipeline:calibs",
    "process": "pipeline:process",
    "associate": "pipeline:associate",
    "release": "pipeline:release",
    "run": "pipeline:run",
    "verify": "pipeline:verify",
    "sql": "query:sql",
    "cone": "query:cone",
    "xmatch": "query:xmatch",
    "import": "imports:import_",
    "detect": "detect:detect",
    "qa": "qa:qa",
    "explore": "explore:explore",
    "demo": "demo:demo",
}


class LazyGroup(click.Group):
    """A click group whose commands are imported on first use."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        try:
            mod = importlib.import_module(f"{__name__}.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{module}":
                raise
            return _missing(name)
        return getattr(mod, attr)


def _missing(name):
    @click.command(name, help="(not available in this build)")
    def cmd():
        raise click.ClickException(f"'minidr {name}' is not available in this build")

    return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="minidr")
def cli():
    """minidr: raw CCD FITS in, an immutable, queryable data release out."""


def main(argv=None):
    """Entry point of the ``minidr`` script."""
    try:
        cli.main(args=argv, prog_name="minidr", standalone_mode=False)
    except MinidrError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(0)
