"""The one error family of minidr.

Every error a user can cause is a :class:`MinidrError`; the CLI turns it into one line on
stderr and a non-zero exit code. This module imports nothing from minidr.
"""

from __future__ import annotations


class MinidrError(Exception):
    """Base of every error minidr raises on purpose."""

    exit_code = 2


class InputError(MinidrError):
    """A bad input file or value: names the file (or value) and the keyword (or field)."""

    def __init__(self, message: str, *, path: str | None = None, keyword: str | None = None):
        parts = []
        if path:
            parts.append(str(path))
        if keyword:
            parts.append(keyword)
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.path = path
        self.keyword = keyword


class ConfigError(MinidrError):
    """A configuration value or file that is wrong (names the setting)."""


class RepoError(MinidrError):
    """A data repository that does not exist, is not empty, or is in the wrong state."""


class LockError(RepoError):
    """Another process is writing to the repository."""


class AlgorithmError(MinidrError):
    """A stage could not process one data unit; carries the numbers that explain why.

    The pipeline records it for that (visit, detector) and carries on with the others.
    """

    def __init__(self, message: str, **metadata):
        super().__init__(message)
        self.metadata = metadata


class ReleaseError(MinidrError):
    """A release that is missing, already exists, or fails verification."""


class QueryError(MinidrError):
    """A query that cannot be run: bad SQL, a forbidden statement, an unsupported construct."""
