"""Helpers shared by the CLI commands: progress bars, quiet flag, repository argument."""

from __future__ import annotations

import sys
from contextlib import contextmanager

import click

quiet_option = click.option("--quiet", "-q", is_flag=True, help="Hide progress bars and messages.")


def show_progress(quiet: bool) -> bool:
    """Progress bars go to stderr, only when it is a terminal and --quiet is not given."""
    return not quiet and sys.stderr.isatty()


@contextmanager
def progress(total: int, label: str, quiet: bool = False):
    """A click progress bar on stderr (with ETA); yields a callable ``advance(n=1)``."""
    if not show_progress(quiet):
        yield lambda n=1: None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr, show_eta=True) as bar:
        yield bar.update


def message(text: str, quiet: bool = False) -> None:
    """A message for people: stderr, hidden by --quiet."""
    if not quiet:
        click.echo(text, err=True)
