"""Every path under a data repository, in one place. Pure functions: creates nothing.

::

    REPO/
      minidr.toml                      pipeline configuration (all settings, commented)
      registry.duckdb                  raws, calibs, processing status, releases
      .lock                            PID of the process writing to the repository
      refcat/refcat.parquet            reference catalog (ra, dec, <band>_mag)
      calibs/bias/det{D}.fits          master bias (e-)
      calibs/dark/det{D}.fits          master dark (e-/s)
      calibs/flat/{band}/det{D}.fits   master flat (normalised)
      processed/{visit}/{det}/calexp.fits     calibrated exposure (image, mask, variance, WCS)
      processed/{visit}/{det}/sources.parquet Source rows of the frame (no objectId yet)
      processed/{visit}/{det}/ccdvisit.json   CcdVisit row of the frame
      processed/{visit}/{det}/failed.json     why the frame could not be processed
      processed/{visit}/{det}/log.txt         the frame's processing log
      associated/Object.parquet, Source.parquet, ForcedSource.parquet
      releases/{NAME}/                 published, immutable releases
      tmp/                             staging area (write, then rename into place)
"""

from __future__ import annotations

from pathlib import Path

CONFIG = "minidr.toml"
REGISTRY = "registry.duckdb"
LOCK = ".lock"


def config_path(repo: Path) -> Path:
    return Path(repo) / CONFIG


def registry_path(repo: Path) -> Path:
    return Path(repo) / REGISTRY


def lock_path(repo: Path) -> Path:
    return Path(repo) / LOCK


def refcat_path(repo: Path) -> Path:
    return Path(repo) / "refcat" / "refcat.parquet"


def calib_path(repo: Path, kind: str, detector: int, band: str | None = None) -> Path:
    base = Path(repo) / "calibs" / kind
    if kind == "flat":
        base = base / str(band)
    return base / f"det{detector:03d}.fits"


def frame_dir(repo: Path, visit: int, detector: int) -> Path:
    return Path(repo) / "processed" / f"{visit:08d}" / f"det{detector:03d}"


def calexp_path(repo: Path, visit: int, detector: int) -> Path:
    return frame_dir(repo, visit, detector) / "calexp.fits"


def sources_path(repo: Path, visit: int, detector: int) -> Path:
    return frame_dir(repo, visit, detector) / "sources.parquet"


def ccdvisit_path(repo: Path, visit: int, detector: int) -> Path:
    return frame_dir(repo, visit, detector) / "ccdvisit.json"


def failed_path(repo: Path, visit: int, detector: int) -> Path:
    return frame_dir(repo, visit, detector) / "failed.json"


def frame_log_path(repo: Path, visit: int, detector: int) -> Path:
    return frame_dir(repo, visit, detector) / "log.txt"


def associated_dir(repo: Path) -> Path:
    return Path(repo) / "associated"


def associated_path(repo: Path, table: str) -> Path:
    return associated_dir(repo) / f"{table}.parquet"


def releases_dir(repo: Path) -> Path:
    return Path(repo) / "releases"


def release_dir(repo: Path, name: str) -> Path:
    return releases_dir(repo) / name


def tmp_dir(repo: Path) -> Path:
    return Path(repo) / "tmp"
