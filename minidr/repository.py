"""The ``Repo`` facade of the Python API: create or open a data repository and work on it.

::

    repo = minidr.Repo.create("myrepo")          # or minidr.Repo("myrepo")
    repo.ingest(["raw/"], refcat="refcat.parquet")
    repo.run("DR1", jobs=2)
    repo.status()
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterable

from .config import Config, load
from .errors import RepoError
from .repo import layout
from .repo.ingest import IngestReport
from .repo.lock import repo_lock
from .repo.registry import Registry


class Repo:
    """A minidr data repository on disk (see :mod:`minidr.repo.layout` for its tree)."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if not path.is_dir():
            raise RepoError(f"{path}: no such repository (create it with 'minidr init')")
        if not layout.config_path(path).is_file() or not layout.registry_path(path).is_file():
            raise RepoError(f"{path}: not a minidr repository (no {layout.CONFIG} and {layout.REGISTRY})")
        self.path = path.resolve()

    def __repr__(self) -> str:
        return f"Repo({str(self.path)!r})"

    # --- creation -------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path, config: Config | None = None, partition_rows: int | None = None) -> "Repo":
        """Create a new, empty repository at ``path`` (a new or empty directory).

        Writes ``minidr.toml`` (every setting, commented) and ``registry.duckdb``.
        ``partition_rows`` sets ``release.partition_rows``.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise RepoError(f"{path}: exists and is not a directory")
        if path.is_dir() and any(path.iterdir()):
            raise RepoError(f"{path}: directory is not empty; a new repository needs a new or empty directory")
        config = (config or Config()).validate()
        if partition_rows is not None:
            config = config.replace(release={"partition_rows": int(partition_rows)})
        path.mkdir(parents=True, exist_ok=True)
        try:
            with repo_lock(path):
                from ._io import atomic_path

                with atomic_path(layout.config_path(path)) as tmp:
                    tmp.write_text(config.to_toml())
                Registry.create(path)
        except BaseException:
            for name in (layout.CONFIG, layout.REGISTRY, layout.LOCK):
                p = path / name
                if p.exists():
                    p.unlink()
            raise
        return cls(path)

    # --- parts ----------------------------------------------------------------------------

    @cached_property
    def config(self) -> Config:
        """The pipeline configuration (``REPO/minidr.toml``)."""
        return load(layout.config_path(self.path))

    @cached_property
    def registry(self) -> Registry:
        return Registry(self.path)

    def lock(self):
        """The writer lock (a context manager); every method here that writes takes it."""
        return repo_lock(self.path)

    # --- ingest and status ----------------------------------------------------------------

    def ingest(self, paths: Iterable[str | os.PathLike] | str | os.PathLike, refcat: str | os.PathLike | None = None,
               progress: Callable[..., None] | None = None) -> IngestReport:
        """Register raw FITS files/folders (headers only) and optionally a reference catalog.

        Returns an :class:`~minidr.repo.ingest.IngestReport` (ingested, skipped_same,
        refused as (path, message)). ``progress(1)`` is called once per file.
        """
        from .repo.ingest import ingest

        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        with repo_lock(self.path):
            return ingest(self.path, list(paths), refcat=refcat, config=self.config, progress=progress)

    def status(self) -> dict:
        """What is ingested, processed and released.

        ``{"path", "raws": {"total", "by_type", "by_band", "by_detector", "visits"},
        "frames": {"science", "done", "failed", "pending"}, "failed_frames": [{visit, detector, message}],
        "calibs": {kind: n},
        "refcat": {...} | None, "releases": [{name, path, n_objects, n_sources, created_at}]}``
        (``by_band`` and ``by_detector`` are keyed ``"type band"`` / ``"type detector"``).
        """
        reg = self.registry
        c = reg.counts()
        n_science = c["by_type"].get("science", 0)
        done = c["frames"].get("done", 0)
        failed = c["frames"].get("failed", 0)
        return {
            "path": str(self.path),
            "raws": {
                "total": sum(c["by_type"].values()),
                "by_type": c["by_type"],
                "by_band": {f"{t} {b}": n for (t, b), n in c["by_band"].items()},
                "by_detector": {f"{t} {d}": n for (t, d), n in c["by_detector"].items()},
                "visits": c["visits"],
            },
            "frames": {"science": n_science, "done": done, "failed": failed,
                       "pending": max(n_science - done - failed, 0)},
            "failed_frames": [{k: f[k] for k in ("visit", "detector", "message")}
                              for f in reg.frames() if f["status"] == "failed"],
            "calibs": c["calibs"],
            "refcat": reg.refcat_info(),
            "releases": reg.releases(),
        }

    # --- the processing chain (minidr.pipeline) -------------------------------------------

    def calibs(self, **kwargs):
        """Master bias/dark/flat per detector (and band): ``minidr.pipeline.make_calibs``."""
        from . import pipeline

        with repo_lock(self.path):
            return pipeline.make_calibs(self, **kwargs)

    def process(self, jobs: int = 1, executor: str = "local", **kwargs):
        """Process every ingested science frame: ``minidr.pipeline.process``."""
        from . import pipeline

        with repo_lock(self.path):
            return pipeline.process(self, jobs=jobs, executor=executor, **kwargs)

    def associate(self, jobs: int = 1, executor: str = "local", **kwargs):
        """Sources -> Objects and forced photometry: ``minidr.pipeline.associate``."""
        from . import pipeline

        with repo_lock(self.path):
            return pipeline.associate(self, jobs=jobs, executor=executor, **kwargs)

    def release(self, name: str, **kwargs):
        """Publish the immutable release ``name``: ``minidr.pipeline.publish``."""
        from . import pipeline

        with repo_lock(self.path):
            return pipeline.publish(self, name, **kwargs)

    def run(self, name: str, jobs: int = 1, executor: str = "local", **kwargs):
        """calibs + process + associate + release, resumable: ``minidr.pipeline.run``."""
        from . import pipeline

        with repo_lock(self.path):
            return pipeline.run(self, name, jobs=jobs, executor=executor, **kwargs)
