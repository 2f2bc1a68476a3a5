"""``minidr explore``: a terminal explorer of a release (textual).

The only part of minidr that imports textual. It talks to a release only through
:class:`minidr.query.Release` (and reads one calexp through :mod:`minidr.repo.store` for
an Object's cutout). ``from minidr.tui import ExplorerApp`` loads textual; importing
``minidr.tui`` alone does not.
"""

from __future__ import annotations


def __getattr__(name):
    if name == "ExplorerApp":
        from .app import ExplorerApp

        return ExplorerApp
    raise AttributeError(name)


__all__ = ["ExplorerApp"]
