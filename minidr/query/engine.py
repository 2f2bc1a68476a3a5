"""Release: a read-only DuckDB view of one published release, with spatial SQL.

One in-memory DuckDB connection per Release. At open it registers the spatial functions
(``sql/functions.sql`` and :mod:`minidr.query.udfs`), creates one view per table
(``Object``, ``Source``, ``ForcedSource`` over their HATS partition files, ``Visit`` and
``CcdVisit`` over their Parquet files), then locks itself: file access is limited to the
release directory, external access is switched off and the configuration is locked. Every
query is first checked and translated by :mod:`minidr.query.rewrite` (read-only, dialects,
sky pruning, neighbour joins), then run under a time limit and a row cap.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..config import Config, QueryConfig
from ..errors import InputError, QueryError, ReleaseError
from ..sky.coords import parse_dec, parse_ra
from ..sky.healpix import ORDER_MAX
from ..sky.regions import Cone, merge_ranges
from . import rewrite, udfs

CATALOG_DEFAULT_POSITION = {"Object": ("coord_ra", "coord_dec"), "Source": ("ra", "dec")}
PLAN_CACHE = 256  # translated queries kept per Release
SEPARATION_META = {b"unit": b"arcsec", b"description": b"angular separation from the query position"}


@dataclass
class Catalog:
    """One table of the release: its files and, for HATS catalogs, partitions and positions."""

    name: str
    files: list[str]  # absolute paths
    schema: pa.Schema
    ra: str | None = None
    dec: str | None = None
    orders: np.ndarray | None = None  # per file: HEALPix order of the partition
    pixels: np.ndarray | None = None  # per file: pixel at that order
    rows: int | None = None
    _rg_bounds: dict = field(default_factory=dict, repr=False)  # file index -> (lo, hi) per row group
    _rg_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _footers: dict = field(default_factory=dict, repr=False)  # file index -> pq.FileMetaData

    def _pixel_range(self, i: int) -> tuple[int, int]:
        shift = 2 * (ORDER_MAX - int(self.orders[i]))
        return int(self.pixels[i]) << shift, (int(self.pixels[i]) + 1) << shift

    def row_group_bounds(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Half-open order-29 ranges [lo, hi) of ``_healpix_29`` in each row group of file ``i``,
        from the Parquet footer statistics (read once per file, then kept: a release never
        changes). A row group without statistics gets the whole partition's range."""
        got = self._rg_bounds.get(i)
        if got is not None:
            return got
        plo, phi = self._pixel_range(i)
        md = self.footer(i)
        col = md.schema.names.index("_healpix_29") if "_healpix_29" in md.schema.names else -1
        lo = np.full(md.num_row_groups, plo, dtype=np.int64)
        hi = np.full(md.num_row_groups, phi, dtype=np.int64)
        if col >= 0:
            for g in range(md.num_row_groups):
                st = md.row_group(g).column(col).statistics
                if st is not None and st.has_min_max:
                    lo[g], hi[g] = int(st.min), int(st.max) + 1
        with self._rg_lock:
            self._rg_bounds[i] = (lo, hi)
        return lo, hi

    def footer(self, i: int) -> pq.FileMetaData:
        """The Parquet footer of file ``i`` (read once, then kept)."""
        md = self._footers.get(i)
        if md is None:
            md = pq.ParquetFile(self.files[i]).metadata
            with self._rg_lock:
                self._footers[i] = md
        return md

    def _overlapping(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Indices of the partition files overlapping any of the sorted half-open ranges [lo, hi)."""
        shift = 2 * (ORDER_MAX - self.orders)
        plo = self.pixels << shift
        phi = (self.pixels + 1) << shift
        # first range whose hi > plo; overlap if its lo < phi
        i = np.searchsorted(hi, plo, side="right")
        ok = i < lo.size
        ok[ok] = lo[i[ok]] < phi[ok]
        return np.flatnonzero(ok)

    def row_group_ranges(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The sorted, merged ranges [lo, hi) narrowed to whole row groups: the ``_healpix_29``
        span of every row group that overlaps them (consecutive row groups merged). A superset
        of the rows in the given ranges, and as few ranges as there are runs of row groups to
        read, so the per-row range test DuckDB applies stays cheap."""
        if self.orders is None or lo.size == 0:
            return lo, hi
        out_lo, out_hi = [], []
        for f in self._overlapping(lo, hi):
            glo, ghi = self.row_group_bounds(int(f))
            # row group g overlaps some range when the first range with hi > glo[g] starts before ghi[g]
            j = np.searchsorted(hi, glo, side="right")
            ok = j < lo.size
            ok[ok] = lo[j[ok]] < ghi[ok]
            if not ok.any():
                continue
            g = np.flatnonzero(ok)
            # runs of consecutive row groups
            brk = np.flatnonzero(np.diff(g) > 1)
            starts = np.concatenate([[g[0]], g[brk + 1]])
            ends = np.concatenate([g[brk], [g[-1]]])
            out_lo.append(glo[starts])
            out_hi.append(ghi[ends])
        if not out_lo:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return merge_ranges(np.concatenate(out_lo), np.concatenate(out_hi))

    def files_for(self, lo: np.ndarray, hi: np.ndarray) -> list[str]:
        """Partition files overlapping any of the half-open order-29 ranges [lo, hi)."""
        if self.orders is None or lo.size == 0:
            return [] if lo.size == 0 else list(self.files)
        return [self.files[i] for i in self._overlapping(lo, hi)]


class _Watchdog:
    """One daemon thread per Release that interrupts the running query at its deadline
    (cheaper than a timer thread per query).

    Arming and disarming only write the deadline: the thread is woken only when it sleeps
    past the new deadline (the first query, or a shorter limit than the last one). Waking a
    thread per query costs little CPU but, on a loaded machine, the woken thread can hold
    the GIL while the OS has it descheduled, and the query then waits for it (~10-20 ms).
    """

    def __init__(self, on_timeout):
        self._on_timeout = on_timeout
        self._cond = threading.Condition()
        self._deadline = None
        self._wake_at = None  # when the sleeping thread wakes up (None: only when notified)
        self._period = 60.0  # idle: wake up this often [s] (the last time limit armed)
        self._closed = False
        self.fired = False
        self._thread = None

    def arm(self, seconds: float) -> None:
        with self._cond:
            self._deadline = time.monotonic() + seconds
            self._period = float(seconds)
            self.fired = False
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="minidr-query-watchdog", daemon=True)
                self._thread.start()
            elif self._wake_at is None or self._wake_at > self._deadline:
                self._cond.notify()

    def disarm(self) -> None:
        with self._cond:
            self._deadline = None  # the thread finds out when it next wakes up

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _loop(self) -> None:
        with self._cond:
            while not self._closed:
                if self._deadline is None:
                    # idle: sleep one period, so that the next query (same limit) ends its
                    # deadline after this wake-up and needs no notify
                    self._wake_at = time.monotonic() + self._period
                    self._cond.wait(self._period)
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._wake_at = self._deadline
                    self._cond.wait(left)
                    continue
                self._deadline = None
                self.fired = True
                self._on_timeout()


def _sql_str(s: str) -> str:
    return "'" + str(s).replace("'", "''") + "'"


def _read_parquet(files: list[str]) -> str:
    return "read_parquet([" + ", ".join(_sql_str(f) for f in files) + "], hive_partitioning=false)"


def _read_properties(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, v = line.split("=", 1)
        out[k.strip()] = v.strip().replace("\\:", ":").replace("\\=", "=").replace("\\#", "#").replace("\\!", "!")
    return out


def _load_catalog(name: str, directory: Path) -> Catalog:
    props = _read_properties(directory / "hats.properties")
    info = directory / "partition_info.csv"
    try:
        lines = [ln.strip() for ln in info.read_text().splitlines() if ln.strip()]
    except FileNotFoundError:
        raise ReleaseError(f"{info}: missing (not a HATS catalog)") from None
    header = [h.strip() for h in lines[0].split(",")]
    try:
        io, ip = header.index("Norder"), header.index("Npix")
    except ValueError:
        raise ReleaseError(f"{info}: needs columns Norder,Npix") from None
    orders, pixels, files = [], [], []
    for ln in lines[1:]:
        parts = ln.split(",")
        k, n = int(parts[io]), int(parts[ip])
        f = directory / "dataset" / f"Norder={k}" / f"Dir={(n // 10000) * 10000}" / f"Npix={n}.parquet"
        orders.append(k)
        pixels.append(n)
        files.append(str(f.resolve()))
    if not files:
        raise ReleaseError(f"{info}: no partitions")
    meta = directory / "dataset" / "_common_metadata"
    schema = pq.read_schema(meta if meta.exists() else files[0])
    ra = props.get("hats_col_ra") or CATALOG_DEFAULT_POSITION.get(name, (None, None))[0]
    dec = props.get("hats_col_dec") or CATALOG_DEFAULT_POSITION.get(name, (None, None))[1]
    if ra not in schema.names or dec not in schema.names:
        ra = dec = None
    rows = int(props["hats_nrows"]) if props.get("hats_nrows", "").isdigit() else None
    return Catalog(
        name=name, files=files, schema=schema, ra=ra, dec=dec,
        orders=np.asarray(orders, dtype=np.int64), pixels=np.asarray(pixels, dtype=np.int64), rows=rows,
    )


def _find_release(path: Path, name: str | None) -> Path:
    from ..release.manifest import list_releases

    path = Path(path)
    if (path / "manifest.json").is_file():
        if name is not None and name != path.name:
            raise ReleaseError(f"{path} is release {path.name!r}, not {name!r}")
        return path
    rel = path / "releases"
    if not path.exists():
        raise ReleaseError(f"{path}: no such repository or release")
    names = list_releases(rel)
    if not names:
        raise ReleaseError(f"{path}: no published release (run 'minidr release REPO NAME')")
    if name is None:
        return rel / names[-1]
    if name not in names:
        raise ReleaseError(f"{path}: no release {name!r}; releases: {', '.join(names)}")
    return rel / name


def _query_config(path: Path, config) -> QueryConfig:
    if isinstance(config, QueryConfig):
        return config
    if isinstance(config, Config):
        return config.query
    if config is None:
        from ..config import load
        from ..repo.layout import config_path

        for p in (Path(path), Path(path).parent.parent):
            if config_path(p).is_file():
                try:
                    return load(config_path(p)).query
                except Exception:  # noqa: BLE001 - a broken repo config must not stop reading a release
                    break
        return QueryConfig()
    raise QueryError(f"config must be a Config or QueryConfig, got {type(config).__name__}")


class Release:
    """A published release, opened read-only for SQL (see :func:`open_release`)."""

    def __init__(self, directory: str | Path, *, config=None):
        self.path = Path(directory).resolve()
        self.name = self.path.name
        self.config = _query_config(self.path, config)
        try:
            self.manifest = json.loads((self.path / "manifest.json").read_text())
        except (OSError, ValueError):
            self.manifest = {}
        self.catalogs: dict[str, Catalog] = {}
        for d in sorted(p for p in self.path.iterdir() if p.is_dir() and (p / "hats.properties").is_file()):
            self.catalogs[d.name] = _load_catalog(d.name, d)
        for f in sorted(self.path.glob("*.parquet")):
            self.catalogs[f.stem] = Catalog(name=f.stem, files=[str(f.resolve())], schema=pq.read_schema(f))
        if not self.catalogs:
            raise ReleaseError(f"{self.path}: no tables (not a release directory)")
        self.last_truncated = False
        self.last_plan: rewrite.Plan | None = None
        self._lock = threading.RLock()
        self._interrupted = False
        self._con = self._connect()
        self._specs = self._table_specs()
        self._plans: OrderedDict[tuple, rewrite.Plan] = OrderedDict()
        self._plans_lock = threading.Lock()
        self._watchdog = _Watchdog(lambda: self._con.interrupt())

    # -- connection ---------------------------------------------------------------------

    def _connect(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(
            ":memory:", config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
        )
        con.execute(f"SET allowed_directories = [{_sql_str(str(self.path) + '/')}]")
        con.execute("SET parquet_metadata_cache = true")  # a release never changes: keep footers
        udfs.register(con)
        for cat in self.catalogs.values():
            con.execute(f'CREATE VIEW "{cat.name}" AS SELECT * FROM {_read_parquet(cat.files)}')
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return con

    def _table_specs(self) -> dict[str, rewrite.TableSpec]:
        specs = {}
        for cat in self.catalogs.values():
            source = narrow = None
            if cat.ra and cat.orders is not None:
                source = self._source_fn(cat)
                narrow = cat.row_group_ranges
            specs[cat.name] = rewrite.TableSpec(
                name=cat.name, columns=tuple(cat.schema.names), ra=cat.ra, dec=cat.dec, source=source,
                narrow=narrow,
            )
        return specs

    @staticmethod
    def _source_fn(cat: Catalog):
        def source(lo, hi):
            files = cat.files_for(lo, hi)
            if not files:
                return f'(SELECT * FROM "{cat.name}" LIMIT 0)'
            return _read_parquet(files)

        return source

    def close(self) -> None:
        """Close the DuckDB connection."""
        self._watchdog.close()
        with self._lock:
            self._con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"<Release {self.name} at {self.path}: {', '.join(self.catalogs)}>"

    # -- metadata -----------------------------------------------------------------------

    def tables(self) -> dict[str, int]:
        """Table name -> number of rows."""
        out = {}
        info = (self.manifest.get("outputs") or {}).get("tables") or {}
        for name, cat in self.catalogs.items():
            rows = (info.get(name) or {}).get("rows") if isinstance(info.get(name), dict) else None
            if rows is None:
                rows = cat.rows
            if rows is None:
                with self._lock:
                    rows = self._con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
            out[name] = int(rows)
        return out

    def _catalog(self, table: str) -> Catalog:
        for name, cat in self.catalogs.items():
            if name.lower() == str(table).lower():
                return cat
        raise QueryError(f"unknown table {table!r}; tables: {', '.join(self.catalogs)}")

    def schema(self, table: str) -> pa.Schema:
        """Arrow schema of a table, with ``unit`` and ``description`` in each field's metadata."""
        return self._catalog(table).schema

    # -- queries ------------------------------------------------------------------------

    def plan(self, query: str, dialect: str = "duckdb", *, limit: int | None = None) -> rewrite.Plan:
        """Check and translate a query without running it (what :meth:`sql` would run).

        Plans are kept (the last ``PLAN_CACHE`` distinct queries): a release never changes,
        so the same text always gives the same plan, and a repeated query skips parsing.
        """
        key = (query, dialect, limit)
        with self._plans_lock:  # not self._lock: that one is held while a query runs
            plan = self._plans.get(key)
            if plan is not None:
                self._plans.move_to_end(key)
                return plan
        plan = rewrite.translate(query, dialect, tables=self._specs, limit=limit)
        with self._plans_lock:
            self._plans[key] = plan
            while len(self._plans) > PLAN_CACHE:
                self._plans.popitem(last=False)
        return plan

    def sql(self, query: str, dialect: str = "duckdb", *, max_rows: int | None = None, timeout: float | None = None) -> pa.Table:
        """Run one read-only query; an Arrow table with units, ``b"truncated"`` in its metadata."""
        cap = self.config.max_rows if max_rows is None else int(max_rows)
        if cap < 0:
            raise QueryError(f"max_rows must be >= 0, got {cap}")
        plan = self.plan(query, dialect, limit=cap + 1)
        self.last_plan = plan
        return self._run(plan.sql, plan.lineage, max_rows=cap, timeout=timeout, capped=True)

    def explain(self, query: str, dialect: str = "duckdb", *, analyze: bool = True) -> str:
        """DuckDB's (analysed) plan of a query: shows the files and row groups it reads."""
        plan = self.plan(query, dialect)
        prefix = "EXPLAIN ANALYZE " if analyze else "EXPLAIN "
        t = self._run(prefix + plan.sql, {}, max_rows=10_000, timeout=None, units=False)
        return "\n".join(str(v) for v in t.column(t.num_columns - 1).to_pylist())

    def scan_stats(self, query: str, dialect: str = "duckdb") -> dict[str, int]:
        """Run a query under EXPLAIN ANALYZE and sum what its Parquet scans read:
        ``files`` (files opened), ``row_groups`` (scanned) and ``row_groups_total``."""
        import re

        text = self.explain(query, dialect, analyze=True)
        files = sum(int(m) for m in re.findall(r"Total Files Read:\s*(\d+)", text))
        rg = re.findall(r"Row Groups Scanned:\s*(\d+)\s*/\s*(\d+)", text)
        return {
            "files": files,
            "row_groups": sum(int(a) for a, _ in rg),
            "row_groups_total": sum(int(b) for _, b in rg),
        }

    def interrupt(self) -> None:
        """Cancel the running query (it raises QueryError 'query cancelled')."""
        self._interrupted = True
        self._con.interrupt()

    def _run(self, sql: str, lineage, *, max_rows, timeout, units: bool = True, params=None,
             capped: bool = False) -> pa.Table:
        cap = self.config.max_rows if max_rows is None else int(max_rows)
        if cap < 0:
            raise QueryError(f"max_rows must be >= 0, got {cap}")
        limit = self.config.timeout if timeout is None else float(timeout)
        dog = self._watchdog
        with self._lock:
            self._interrupted = False
            if limit and limit > 0:
                dog.arm(limit)
            t0 = time.perf_counter()
            try:
                rel = self._con.sql(sql, params=params) if params else self._con.sql(sql)
                if rel is None:
                    raise QueryError("the statement returned no rows")
                table = rel.to_arrow_table() if capped else rel.limit(cap + 1).to_arrow_table()
            except duckdb.InterruptException:
                if dog.fired:
                    raise QueryError(
                        f"query stopped by the time limit of {limit:g} s (query.timeout; --timeout)"
                    ) from None
                raise QueryError("query cancelled") from None
            except duckdb.Error as exc:
                if dog.fired:
                    raise QueryError(f"query stopped by the time limit of {limit:g} s (query.timeout)") from None
                msg = str(exc).strip().splitlines()[0]
                raise QueryError(msg) from None
            finally:
                dog.disarm()
            self.last_elapsed = time.perf_counter() - t0
        truncated = table.num_rows > cap
        if truncated:
            table = table.slice(0, cap)
        self.last_truncated = truncated
        if units:
            table = self._with_units(table, lineage)
        meta = dict(table.schema.metadata or {})
        meta[b"truncated"] = b"true" if truncated else b"false"
        return table.replace_schema_metadata(meta)

    def _with_units(self, table: pa.Table, lineage: dict) -> pa.Table:
        fields = []
        for f in table.schema:
            src = lineage.get(f.name.lower())
            meta = None
            if src is not None:
                try:
                    sf = self.catalogs[src[0]].schema.field(src[1])
                    meta = sf.metadata
                except (KeyError, IndexError):
                    meta = None
            fields.append(f.with_metadata(meta) if meta else f)
        return pa.Table.from_arrays(table.columns, schema=pa.schema(fields, metadata=table.schema.metadata))

    # -- convenience queries ------------------------------------------------------------

    def _columns_sql(self, cat: Catalog, columns) -> str:
        if columns is None:
            return "*"
        if isinstance(columns, str):
            columns = [c.strip() for c in columns.split(",") if c.strip()]
        names = {n.lower(): n for n in cat.schema.names}
        out = []
        for c in columns:
            if c.lower() not in names:
                raise QueryError(f"unknown column {c!r} of {cat.name}; columns: {', '.join(cat.schema.names)}")
            out.append(f'"{names[c.lower()]}"')
        return ", ".join(out)

    def cone(self, ra, dec, radius_arcsec: float, table: str = "Object", columns=None, *, max_rows=None) -> pa.Table:
        """Rows of ``table`` within ``radius_arcsec`` of (ra, dec) [deg or sexagesimal], nearest
        first, with a ``separation`` column [arcsec]."""
        cat = self._catalog(table)
        if not cat.ra:
            raise QueryError(f"table {cat.name} has no position columns for a cone search")
        ra0, dec0 = parse_ra(ra), parse_dec(dec)
        try:
            r = float(radius_arcsec)
        except (TypeError, ValueError):
            raise QueryError(f"radius must be a number of arcsec, got {radius_arcsec!r}") from None
        try:
            Cone(ra0, dec0, r / 3600.0)
        except InputError as exc:
            raise QueryError(str(exc)) from None
        cols = self._columns_sql(cat, columns)
        q = (
            f'SELECT {cols}, ang_sep("{cat.ra}", "{cat.dec}", {ra0!r}, {dec0!r}) * 3600.0 AS separation '
            f'FROM "{cat.name}" WHERE cone("{cat.ra}", "{cat.dec}", {ra0!r}, {dec0!r}, {r / 3600.0!r}) '
            f"ORDER BY separation"
        )
        t = self.sql(q, max_rows=max_rows)
        i = t.schema.get_field_index("separation")
        return t.set_column(i, t.schema.field(i).with_metadata(SEPARATION_META), t.column(i))

    def lightcurve(self, object_id: int) -> pa.Table:
        """Source and ForcedSource rows of one Object, a ``kind`` column ('source' or 'forced'),
        sorted by ``midpointMjdTai``."""
        try:
            oid = int(object_id)
        except (TypeError, ValueError):
            raise QueryError(f"objectId must be an integer, got {object_id!r}") from None
        parts = []
        for name, kind in (("Source", "source"), ("ForcedSource", "forced")):
            if name not in self.catalogs:
                continue
            parts.append(self._rows_of_object(name, kind, oid))
        if not parts:
            raise QueryError("this release has neither Source nor ForcedSource")
        table = pa.concat_tables(parts, promote_options="default")
        if table.num_rows:
            order = pc.sort_indices(table, sort_keys=[("midpointMjdTai", "ascending"), ("kind", "descending")])
            table = table.take(order)
        meta = {b"truncated": b"false", b"objectId": str(oid).encode()}
        return table.replace_schema_metadata(meta)

    def _rows_of_object(self, name: str, kind: str, oid: int) -> pa.Table:
        cat = self.catalogs[name]
        src = f'"{name}"'
        pos = self._object_position(oid)
        if pos is not None and cat.ra and cat.orders is not None:
            # the rows of one object lie near its position: read only the partitions
            # around it, and check against nDetections where it applies
            ra0, dec0, ndet = pos
            lo, hi = Cone(ra0, dec0, 60.0 / 3600.0).ranges29()
            files = cat.files_for(lo, hi)
            if files:
                src = _read_parquet(files)
        cols = [f'"{c}"' for c in cat.schema.names if c != "_healpix_29"]
        q = f"SELECT '{kind}' AS kind, {', '.join(cols)} FROM {src} WHERE objectId = {oid}"
        t = self._run(q, {}, max_rows=10_000_000, timeout=None, units=False)
        if src != f'"{name}"' and name == "Source" and pos is not None and pos[2] is not None and t.num_rows != pos[2]:
            q = f"SELECT '{kind}' AS kind, {', '.join(cols)} FROM \"{name}\" WHERE objectId = {oid}"
            t = self._run(q, {}, max_rows=10_000_000, timeout=None, units=False)
        fields = [pa.field("kind", pa.string(), metadata={b"unit": b"", b"description": b"'source' or 'forced'"})]
        for f in list(t.schema)[1:]:
            fields.append(cat.schema.field(f.name).with_type(f.type) if f.name in cat.schema.names else f)
        return pa.Table.from_arrays(t.columns, schema=pa.schema(fields))

    def _object_position(self, oid: int):
        cat = self.catalogs.get("Object")
        if cat is None or not cat.ra:
            return None
        has_n = "nDetections" in cat.schema.names
        q = f'SELECT "{cat.ra}", "{cat.dec}"{", nDetections" if has_n else ""} FROM "Object" WHERE objectId = {oid} LIMIT 1'
        t = self._run(q, {}, max_rows=1, timeout=None, units=False)
        if t.num_rows == 0:
            return None
        row = t.to_pylist()[0]
        vals = list(row.values())
        return vals[0], vals[1], (vals[2] if has_n else None)

    def xmatch(self, positions, radius_arcsec: float = 1.0, table: str = "Object", ra_column: str = "ra",
               dec_column: str = "dec", *, columns=None) -> pa.Table:
        """Nearest row of ``table`` within ``radius_arcsec`` of each user position.

        Returns the user's rows (in their order) with the match's columns appended (a
        column whose name the user table already has gets the suffix ``_<table>``) and
        ``separation`` [arcsec]; unmatched rows are kept with nulls. ``columns`` limits the
        match's columns (default: all but ``_healpix_29``); fewer columns read much less.
        """
        from .xmatch import xmatch

        return xmatch(self, positions, radius_arcsec=radius_arcsec, table=table, ra_column=ra_column,
                      dec_column=dec_column, columns=columns)


def open_release(path, name: str | None = None, *, config=None) -> Release:
    """Open a release read-only: ``path`` is a repository (its newest release unless ``name``)
    or a release directory."""
    return Release(_find_release(Path(path), name), config=config)


__all__ = ["Release", "open_release", "Catalog"]
