"""minidr: a mini data-release system for astronomy.

Raw CCD FITS in; an immutable, reproducible, queryable data release out.
The public API is re-exported here (loaded on first use, so ``import minidr`` is quick);
see docs/python-api.md.

>>> import minidr
>>> sorted(n for n in minidr.__all__ if n[0].islower() and n != "__version__")
['detect', 'open_release', 'to_astropy']
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

from .config import Config
from .errors import (
    AlgorithmError,
    ConfigError,
    InputError,
    LockError,
    MinidrError,
    QueryError,
    ReleaseError,
    RepoError,
)

try:
    __version__ = version("minidr")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

_LAZY = {
    "Repo": "minidr.repository",
    "Release": "minidr.query",
    "open_release": "minidr.query",
    "to_astropy": "minidr.query",
    "detect": "minidr.image",
}

__all__ = [
    "__version__",
    "Config",
    "Repo",
    "Release",
    "open_release",
    "to_astropy",
    "detect",
    "MinidrError",
    "InputError",
    "ConfigError",
    "RepoError",
    "LockError",
    "AlgorithmError",
    "ReleaseError",
    "QueryError",
]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'minidr' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
