"""``minidr explore``: the terminal explorer (textual) of a release."""

from __future__ import annotations

import click


@click.command("explore")
@click.argument("repo", type=click.Path(file_okay=False))
@click.option("--release", "release_name", default=None, help="Release name (default: the newest).")
@click.option("--theme", default=None,
              help="Colour theme, e.g. textual-light, textual-dark, ansi-light, ansi-dark (terminal colours).")
def explore(repo: str, release_name: str | None, theme: str | None) -> None:
    """Browse and query a release in the terminal: release browser, SQL editor with spatial
    functions, results, cone search, Object view (light curve, cutout) and sky map.

    Keys: ctrl+j runs the query, Esc cancels it, F1 help, ctrl+q quits.
    """
    from ..query import open_release

    dr = open_release(repo, release_name)  # a missing release is a one-line ReleaseError
    from ..tui.app import ExplorerApp

    try:
        app = ExplorerApp(dr, theme=theme)
        app.run()
    finally:
        dr.close()
