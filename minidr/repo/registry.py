"""``REPO/registry.duckdb``: raws, master calibrations, frame status, releases, refcat.

This module is the registry's only writer. Connections are short-lived (open, work, close)
so that other processes can read between writes; a connection that finds the file locked
by another process retries for a while (readers ~10 s, writers ~60 s) before giving up
with a :class:`~minidr.errors.RepoError`. Writes that belong together run in one
transaction, so the registry is never half-updated. Writers also hold the repository lock
(:mod:`minidr.repo.lock`), so there is one writing process at a time.
"""

from __future__ import annotations

import dataclasses
import json
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Iterable

from ..errors import ReleaseError, RepoError
from ..products import AmpInfo, RawInfo, Section
from . import layout

SCHEMA_VERSION = "1"
READ_TIMEOUT = 10.0   #: seconds a reader waits for a locked registry
WRITE_TIMEOUT = 60.0  #: seconds a writer waits for a locked registry

_TABLES = ("meta", "raw", "calib", "frame", "release", "refcat")


def ddl() -> str:
    """The registry DDL (``minidr/sql/registry.sql``; ``sql/registry.sql`` links to it)."""
    return resources.files("minidr").joinpath("sql", "registry.sql").read_text()


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _is_lock_error(exc: Exception) -> bool:
    import duckdb

    text = str(exc)
    return (isinstance(exc, duckdb.IOException) and "lock" in text.lower()) or (
        isinstance(exc, duckdb.ConnectionException) and "different configuration" in text)


# --- (de)serialising RawInfo ---------------------------------------------------------------


def amps_to_json(amps: Iterable[AmpInfo]) -> str:
    return json.dumps([dataclasses.asdict(a) for a in amps], sort_keys=True)


def amps_from_json(text: str) -> tuple[AmpInfo, ...]:
    out = []
    for d in json.loads(text):
        d = dict(d)
        for key in ("datasec", "biassec", "detsec"):
            d[key] = Section(**d[key])
        out.append(AmpInfo(**d))
    return tuple(out)


_RAW_COLS = ("visit", "detector", "path", "sha256", "size", "imagetyp", "exptime", "mjd", "band", "instrument",
             "ra", "dec", "ny", "nx", "bitpix", "amps", "wcs_header", "ingested_at")


def _raw_row(info: RawInfo, sha256: str, size: int, when: datetime) -> tuple:
    return (info.visit, info.detector, info.path, sha256, size, info.imagetyp, info.exptime, info.mjd, info.band,
            info.instrument, info.ra, info.dec, info.shape[0], info.shape[1], info.bitpix, amps_to_json(info.amps),
            json.dumps(info.wcs_header, sort_keys=True) if info.wcs_header is not None else None, when)


def _raw_info(row: dict) -> RawInfo:
    return RawInfo(
        path=row["path"], imagetyp=row["imagetyp"], exptime=row["exptime"], mjd=row["mjd"], band=row["band"],
        visit=int(row["visit"]), detector=int(row["detector"]), instrument=row["instrument"], ra=row["ra"],
        dec=row["dec"], shape=(int(row["ny"]), int(row["nx"])), amps=amps_from_json(row["amps"]),
        wcs_header=json.loads(row["wcs_header"]) if row["wcs_header"] else None, bitpix=int(row["bitpix"]),
    )


class Registry:
    """The registry of one repository: ``Registry(repo_path)``."""

    def __init__(self, repo_path: str | Path):
        self.repo_path = Path(repo_path)
        self.path = layout.registry_path(self.repo_path)
        if not self.path.is_file():
            raise RepoError(f"{self.repo_path}: not a minidr repository (no {layout.REGISTRY}; run 'minidr init')")

    # --- creation and connections -----------------------------------------------------

    @classmethod
    def create(cls, repo_path: str | Path) -> "Registry":
        """Create ``registry.duckdb`` with the DDL of ``sql/registry.sql`` (write-then-rename)."""
        import duckdb

        from .._io import atomic_path

        repo_path = Path(repo_path)
        target = layout.registry_path(repo_path)
        if target.exists():
            raise RepoError(f"{target}: registry already exists")
        with atomic_path(target) as tmp:
            con = duckdb.connect(str(tmp))
            try:
                con.execute(ddl())
                con.execute("INSERT INTO meta VALUES ('schema_version', ?), ('created_at', ?)",
                            [SCHEMA_VERSION, _now().isoformat(timespec="seconds")])
            finally:
                con.close()
            wal = Path(str(tmp) + ".wal")
            if wal.exists():  # pragma: no cover - close() checkpoints
                wal.unlink()
        return cls(repo_path)

    @contextmanager
    def _connect(self, read_only: bool):
        import duckdb

        deadline = time.monotonic() + (READ_TIMEOUT if read_only else WRITE_TIMEOUT)
        delay = 0.01
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except (duckdb.IOException, duckdb.ConnectionException) as exc:
                if not _is_lock_error(exc):
                    raise RepoError(f"{self.path}: cannot open the registry ({exc})") from None
                if time.monotonic() > deadline:
                    raise RepoError(f"{self.path}: registry is busy (locked by another process); try again") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
        try:
            yield con
        finally:
            con.close()

    def _select(self, sql: str, params: list | None = None) -> list[dict]:
        with self._connect(read_only=True) as con:
            cur = con.execute(sql, params or [])
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]

    @contextmanager
    def _transaction(self):
        with self._connect(read_only=False) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # --- raws ---------------------------------------------------------------------------

    def raws(self, imagetyp: str | None = None, band: str | None = None, detector: int | None = None) -> list[RawInfo]:
        """Ingested raws (optionally of one type, band, detector), sorted by (visit, detector)."""
        where, params = [], []
        for col, val in (("imagetyp", imagetyp), ("band", band), ("detector", detector)):
            if val is not None:
                where.append(f"{col} = ?")
                params.append(val)
        sql = "SELECT * FROM raw" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY visit, detector"
        return [_raw_info(r) for r in self._select(sql, params)]

    def raw(self, visit: int, detector: int) -> RawInfo | None:
        """The raw of one (visit, detector), or None."""
        rows = self._select("SELECT * FROM raw WHERE visit = ? AND detector = ?", [visit, detector])
        return _raw_info(rows[0]) if rows else None

    def raw_paths(self) -> list[dict]:
        """Every raw as ``{path, sha256, size, imagetyp, band, visit, detector}``, sorted by (visit, detector)."""
        return self._select("SELECT path, sha256, size, imagetyp, band, visit, detector FROM raw ORDER BY visit, detector")

    def add_raws(self, entries: list[tuple[RawInfo, str, int]]) -> None:
        """Insert raws ``(info, sha256, size)`` in one transaction (all or nothing).

        Callers (ingest) have already checked for duplicates; a conflicting (visit,
        detector) here rolls the whole batch back with a RepoError.
        """
        if not entries:
            return
        import duckdb

        when = _now()
        rows = [_raw_row(info, sha, size, when) for info, sha, size in entries]
        try:
            with self._transaction() as con:
                con.executemany(f"INSERT INTO raw ({', '.join(_RAW_COLS)}) VALUES ({', '.join('?' * len(_RAW_COLS))})",
                                rows)
        except duckdb.ConstraintException as exc:
            raise RepoError(f"{self.path}: registry already holds one of these (visit, detector): {exc}") from None

    def relocate_raws(self, moves: list[tuple[str, str]]) -> None:
        """Point raws at their new paths: ``(sha256, new_path)`` pairs (files moved since ingest)."""
        if not moves:
            return
        with self._transaction() as con:
            con.executemany("UPDATE raw SET path = ? WHERE sha256 = ?", [(str(p), sha) for sha, p in moves])

    # --- master calibrations ------------------------------------------------------------

    def record_calib(self, kind: str, detector: int, band: str | None, path: str, inputs: list[str]) -> None:
        """Record (or replace) the master ``kind`` of ``detector`` (and ``band`` for flats)."""
        if kind not in ("bias", "dark", "flat"):
            raise ValueError(f"unknown calibration kind {kind!r}")
        with self._transaction() as con:
            con.execute("DELETE FROM calib WHERE kind = ? AND detector = ? AND band IS NOT DISTINCT FROM ?",
                        [kind, detector, band])
            con.execute("INSERT INTO calib VALUES (?, ?, ?, ?, ?, ?)",
                        [kind, detector, band, str(path), json.dumps(list(inputs)), _now()])

    def calibs(self) -> list[dict]:
        """Master calibrations: ``{kind, detector, band, path, inputs: list[str], created_at}``."""
        rows = self._select("SELECT * FROM calib ORDER BY kind, detector, band NULLS FIRST")
        for r in rows:
            r["inputs"] = json.loads(r["inputs"])
        return rows

    # --- frames -------------------------------------------------------------------------

    def record_frames(self, rows: list[dict]) -> None:
        """Record (or replace) the status of frames: dicts with visit, detector, status
        ('done' | 'failed'), message, n_sources. One transaction."""
        if not rows:
            return
        when = _now()
        values = []
        for r in rows:
            if r["status"] not in ("done", "failed"):
                raise ValueError(f"frame status must be 'done' or 'failed', not {r['status']!r}")
            n = r.get("n_sources")
            values.append((int(r["visit"]), int(r["detector"]), r["status"], r.get("message"),
                           None if n is None else int(n), when))
        with self._transaction() as con:
            con.executemany("INSERT OR REPLACE INTO frame VALUES (?, ?, ?, ?, ?, ?)", values)

    def frames(self) -> list[dict]:
        """Frame status rows ``{visit, detector, status, message, n_sources, updated_at}`` by (visit, detector)."""
        return self._select("SELECT * FROM frame ORDER BY visit, detector")

    # --- releases -----------------------------------------------------------------------

    def record_release(self, name: str, path: str, n_objects: int, n_sources: int) -> None:
        """Record a published release. Recording the same name and path again changes nothing;
        the same name with another path is a ReleaseError (releases are immutable)."""
        with self._transaction() as con:
            old = con.execute("SELECT path FROM release WHERE name = ?", [name]).fetchone()
            if old is not None:
                if old[0] == str(path):
                    return
                raise ReleaseError(f"release {name} is already recorded at {old[0]}; releases are immutable")
            seq = con.execute("SELECT coalesce(max(seq), 0) + 1 FROM release").fetchone()[0]
            con.execute("INSERT INTO release VALUES (?, ?, ?, ?, ?, ?)",
                        [seq, name, str(path), int(n_objects), int(n_sources), _now()])

    def releases(self) -> list[dict]:
        """Releases, oldest first: ``{name, path, n_objects, n_sources, created_at}``."""
        rows = self._select("SELECT name, path, n_objects, n_sources, created_at FROM release ORDER BY seq")
        return rows

    # --- reference catalog --------------------------------------------------------------

    def set_refcat(self, path: str, source: str, sha256: str, n_rows: int, bands: list[str]) -> None:
        """Record the repository's reference catalog (replacing any earlier one)."""
        with self._transaction() as con:
            con.execute("DELETE FROM refcat")
            con.execute("INSERT INTO refcat VALUES (?, ?, ?, ?, ?, ?)",
                        [str(path), str(source), sha256, int(n_rows), json.dumps(list(bands)), _now()])

    def refcat(self) -> str | None:
        """Absolute path of the reference catalog Parquet file, or None if none was ingested."""
        rows = self._select("SELECT path FROM refcat")
        return rows[0]["path"] if rows else None

    def refcat_info(self) -> dict | None:
        """``{path, source, sha256, n_rows, bands, ingested_at}`` of the reference catalog, or None."""
        rows = self._select("SELECT * FROM refcat")
        if not rows:
            return None
        rows[0]["bands"] = json.loads(rows[0]["bands"])
        return rows[0]

    # --- inspection ---------------------------------------------------------------------

    def dump(self, with_times: bool = False) -> dict[str, list[tuple]]:
        """Every row of every table, sorted (timestamps left out unless ``with_times``): for tests."""
        out = {}
        with self._connect(read_only=True) as con:
            for table in _TABLES:
                cur = con.execute(f"SELECT * FROM {table}")
                names = [d[0] for d in cur.description]
                keep = [i for i, n in enumerate(names) if with_times or not n.endswith("_at")]
                out[table] = sorted((tuple(row[i] for i in keep) for row in cur.fetchall()), key=repr)
        return out

    def counts(self) -> dict:
        """Numbers for ``minidr status``: raws per type/band/detector, frames per status, calibs."""
        with self._connect(read_only=True) as con:
            def q(sql):
                return con.execute(sql).fetchall()

            return {
                "by_type": dict(q("SELECT imagetyp, count(*) FROM raw GROUP BY 1 ORDER BY 1")),
                "by_band": {(t, b): n for t, b, n in q(
                    "SELECT imagetyp, band, count(*) FROM raw WHERE band IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2")},
                "by_detector": {(t, d): n for t, d, n in q(
                    "SELECT imagetyp, detector, count(*) FROM raw GROUP BY 1, 2 ORDER BY 1, 2")},
                "visits": dict(q("SELECT imagetyp, count(DISTINCT visit) FROM raw GROUP BY 1")),
                "frames": dict(q("SELECT status, count(*) FROM frame GROUP BY 1")),
                "calibs": dict(q("SELECT kind, count(*) FROM calib GROUP BY 1")),
            }
