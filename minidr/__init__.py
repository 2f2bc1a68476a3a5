"""minidr: a mini data-release system for astronomy.

Raw CCD FITS in; an immutable, reproducible, queryable data release out.
The public API is re-exported here; see docs/python-api.md.
"""

from __future__ import annotations

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

__all__ = [
    "__version__",
    "Config",
    "MinidrError",
    "InputError",
    "ConfigError",
    "RepoError",
    "LockError",
    "AlgorithmError",
    "ReleaseError",
    "QueryError",
]
