"""Register raw FITS files and a reference catalog in a repository. Never reads pixels.

Files are checked one by one (headers only, through :func:`minidr.raw.reader.read_header`);
a file that breaks a rule is refused with a one-line message and changes nothing. The good
files of a batch go into the registry in one transaction. Re-ingesting a file already
present (same sha256) changes nothing (unless the registered copy is gone: then the file
moved, and the registry follows it to the new path); another file claiming a (visit, detector) already
taken is refused.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .._io import atomic_path, sha256_file
from ..config import Config
from ..errors import InputError, MinidrError
from . import layout
from .registry import Registry

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz", ".fits.fz", ".fz")
"""Files with these endings are picked up when a folder is ingested."""

BATCH = 500
"""Files per registry transaction."""


@dataclass
class IngestReport:
    """What :func:`ingest` did."""

    ingested: list[str] = field(default_factory=list)
    skipped_same: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  #: (path, one-line message)
    refcat: str | None = None                                       #: refcat Parquet path, if one was ingested

    def summary(self) -> str:
        return (f"{len(self.ingested)} ingested, {len(self.skipped_same)} already present, "
                f"{len(self.refused)} refused")


def is_fits_name(name: str) -> bool:
    low = name.lower()
    return any(low.endswith(s) for s in FITS_SUFFIXES)


def collect_files(paths: Iterable[str | Path]) -> list[tuple[Path, str | None]]:
    """Expand files and folders (recursively, sorted, hidden entries skipped).

    Returns ``(path, problem)`` pairs: ``problem`` is None, or a message for a path that does
    not exist. Folders contribute only files with a FITS ending; a file named explicitly is
    always tried. Each file appears once, in the order given (folders sorted).
    """
    out: list[tuple[Path, str | None]] = []
    seen: set[Path] = set()

    def add(p: Path, problem=None):
        key = p.resolve() if problem is None else p
        if key not in seen:
            seen.add(key)
            out.append((p, problem))

    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith(".") and is_fits_name(name):
                        add(Path(root) / name)
        elif p.exists():
            add(p)
        else:
            add(p, "no such file or directory")
    return out


def ingest(repo_path: str | Path, paths: Iterable[str | Path], refcat: str | Path | None = None,
           config: Config | None = None, progress: Callable[..., None] | None = None) -> IngestReport:
    """Ingest raw files (and folders of them) and optionally a reference catalog.

    ``progress``, if given, is called once per file examined (``progress(1)``). The caller
    holds the repository lock. A bad reference catalog raises :class:`InputError` before
    anything is written.
    """
    from ..raw.reader import read_header

    repo_path = Path(repo_path)
    config = config or Config()
    registry = Registry(repo_path)
    report = IngestReport()
    staged_refcat = None
    if refcat is not None:
        staged_refcat = _stage_refcat(repo_path, Path(refcat), config)

    known = {r["sha256"]: r for r in registry.raw_paths()}
    taken = {(r["visit"], r["detector"]): r for r in known.values()}
    batch: list[tuple] = []
    moves: list[tuple[str, str]] = []

    def flush():
        if batch:
            registry.add_raws(batch)
            report.ingested.extend(info.path for info, _, _ in batch)
            batch.clear()
        if moves:
            registry.relocate_raws(moves)
            moves.clear()

    for path, problem in collect_files(paths):
        try:
            if problem:
                raise InputError(problem, path=str(path))
            apath = path.resolve()
            info = read_header(apath)
            sha = sha256_file(apath)
            size = apath.stat().st_size
            if sha in known:
                report.skipped_same.append(str(apath))
                old = known[sha]["path"]
                if old != str(apath) and not Path(old).exists():  # the file moved: follow it
                    moves.append((sha, str(apath)))
                    known[sha]["path"] = str(apath)
            else:
                key = (info.visit, info.detector)
                if key in taken:
                    other = taken[key]["path"]
                    raise InputError(f"visit {info.visit} detector {info.detector} is already ingested from "
                                     f"a different file ({other})", path=str(apath), keyword="EXPID")
                known[sha] = taken[key] = {"path": str(apath), "sha256": sha}
                batch.append((info, sha, size))
                if len(batch) >= BATCH:
                    flush()
        except (MinidrError, OSError) as exc:
            msg = str(exc) if isinstance(exc, MinidrError) else f"{path}: {exc.strerror or exc}"
            report.refused.append((str(path), msg))
        if progress is not None:
            progress(1)
    flush()

    if staged_refcat is not None:
        report.refcat = _commit_refcat(repo_path, registry, staged_refcat)
    return report


# --- reference catalog ----------------------------------------------------------------------


@dataclass
class _StagedRefcat:
    source: Path
    table: object   # pyarrow.Table
    sha256: str
    bands: list[str]


def read_table(path: Path):
    """A Parquet, CSV or FITS table as a pyarrow Table (InputError naming the file otherwise)."""
    import pyarrow as pa

    if not path.is_file():
        raise InputError("file not found", path=str(path))
    low = path.name.lower()
    try:
        if low.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            return pq.read_table(path)
        if low.endswith((".csv", ".csv.gz", ".txt")):
            import pyarrow.csv as pcsv

            return pcsv.read_csv(path)
        if is_fits_name(low):
            import numpy as np
            from astropy.table import Table

            t = Table.read(path, format="fits")
            cols = {}
            for name in t.colnames:
                col = np.asarray(t[name])
                if col.ndim != 1:
                    continue
                if col.dtype.byteorder not in ("=", "|"):
                    col = col.astype(col.dtype.newbyteorder("="))
                cols[name] = pa.array(col)
            return pa.table(cols)
    except (OSError, ValueError, TypeError, pa.ArrowException) as exc:
        raise InputError(f"cannot read the table ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})",
                         path=str(path)) from None
    raise InputError("unknown table format (Parquet, CSV or FITS table expected)", path=str(path))


def refcat_bands(columns: Iterable[str], pattern: str) -> list[str]:
    """Bands whose magnitude column (``pattern`` with ``{band}``) exists, in column order."""
    left, right = pattern.split("{band}", 1)
    rx = re.compile("^" + re.escape(left) + r"(?P<band>[A-Za-z0-9_]+?)" + re.escape(right) + "$")
    return [m.group("band") for c in columns if (m := rx.match(c))]


def _stage_refcat(repo_path: Path, source: Path, config: Config) -> _StagedRefcat:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    table = read_table(source)
    cfg = config.refcat
    for col, lo, hi in ((cfg.ra, 0.0, 360.0), (cfg.dec, -90.0, 90.0)):
        if col not in table.column_names:
            raise InputError(f"missing column (reference catalogs need {cfg.ra}, {cfg.dec} and "
                             f"{cfg.mag.format(band='<band>')})", path=str(source), keyword=col)
        if not pa.types.is_floating(table[col].type) and not pa.types.is_integer(table[col].type):
            raise InputError(f"column is {table[col].type}, not numeric degrees", path=str(source), keyword=col)
        vals = table[col].to_numpy(zero_copy_only=False).astype(float)
        if len(vals) and (not np.all(np.isfinite(vals)) or vals.min() < lo or vals.max() > hi):
            raise InputError(f"values must be finite and within [{lo:g}, {hi:g}] degrees",
                             path=str(source), keyword=col)
    bands = refcat_bands(table.column_names, cfg.mag)
    if not bands:
        raise InputError(f"no magnitude column (expected at least one {cfg.mag.format(band='<band>')}, e.g. "
                         f"{cfg.mag.format(band='g')})", path=str(source), keyword=cfg.mag.format(band="<band>"))
    for b in bands:
        col = cfg.mag.format(band=b)
        if not (pa.types.is_floating(table[col].type) or pa.types.is_integer(table[col].type)):
            raise InputError(f"column is {table[col].type}, not numeric AB magnitudes", path=str(source), keyword=col)
        table = table.set_column(table.column_names.index(col), col, pc.cast(table[col], pa.float64()))
    for col in (cfg.ra, cfg.dec):
        table = table.set_column(table.column_names.index(col), col, pc.cast(table[col], pa.float64()))
    return _StagedRefcat(source=source.resolve(), table=table, sha256=sha256_file(source), bands=bands)


def _commit_refcat(repo_path: Path, registry: Registry, staged: _StagedRefcat) -> str:
    import pyarrow.parquet as pq

    target = layout.refcat_path(repo_path)
    with atomic_path(target) as tmp:
        pq.write_table(staged.table, tmp, compression="zstd")
    registry.set_refcat(str(target.resolve()), str(staged.source), staged.sha256, staged.table.num_rows, staged.bands)
    return str(target.resolve())
