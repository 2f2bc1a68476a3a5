"""Write-then-rename: nothing already stored is ever half-written."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    Works for files and directories (an existing directory is moved aside, replaced, then
    removed). On error the temporary is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    _remove(tmp)
    try:
        yield tmp
        if tmp.is_dir() and path.is_dir():  # a directory cannot be replaced in one step
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            _remove(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def remove_stale_temporaries(directory: str | Path) -> int:
    """Remove temporaries that a killed run left below ``directory`` (call under the
    repository's writer lock, when no other writer can be running); returns how many."""
    n = 0
    directory = Path(directory)
    if directory.is_dir():
        for p in sorted(directory.rglob(".*.tmp-*"), reverse=True):
            _remove(p)
            n += 1
    return n
