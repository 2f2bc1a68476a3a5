"""The writer lock of a repository: one writing process at a time.

``with repo_lock(repo):`` takes an exclusive, non-blocking ``fcntl.flock`` on ``REPO/.lock``
and writes the holder's PID into it. Another process that tries meanwhile gets a
:class:`~minidr.errors.LockError` naming that PID at once (it does not wait). The operating
system releases the lock when the holder exits, even if it crashes, so a stale ``.lock``
file never blocks anyone. Within one process the lock is re-entrant (a command that takes it
may call another that takes it too).
"""

from __future__ import annotations

import fcntl
import os
import threading
from contextlib import contextmanager
from pathlib import Path

from ..errors import LockError, RepoError
from . import layout

_held: dict[str, list] = {}   # lock path -> [fd, depth] held by this process
_guard = threading.Lock()


def lock_holder(repo_path: str | Path) -> int | None:
    """PID written in ``REPO/.lock`` (the last or current holder), or None."""
    try:
        text = layout.lock_path(Path(repo_path)).read_text().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


@contextmanager
def repo_lock(repo_path: str | Path):
    """Hold the repository's writer lock for the duration of the ``with`` block."""
    repo_path = Path(repo_path)
    if not repo_path.is_dir():
        raise RepoError(f"{repo_path}: no such repository")
    path = layout.lock_path(repo_path)
    key = str(path.resolve())
    with _guard:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
        else:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                pid = lock_holder(repo_path)
                who = f"PID {pid}" if pid else "another process"
                raise LockError(f"repository {repo_path} is locked by {who}") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            os.fsync(fd)
            _held[key] = entry = [fd, 1]
    try:
        yield
    finally:
        with _guard:
            entry[1] -= 1
            if entry[1] == 0:
                del _held[key]
                fd = entry[0]
                try:
                    os.ftruncate(fd, 0)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)
