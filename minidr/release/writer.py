"""The only writer under ``releases/``: HATS catalogs, flat tables, manifest, write-then-rename.

A HATS catalog directory (see docs/release-format.md)::

    NAME/
      hats.properties                         HATS properties (no creation date: reproducible)
      partition_info.csv                      Norder,Npix of every partition
      dataset/_common_metadata                Arrow schema (units, descriptions)
      dataset/_metadata                       schema + every row group footer of every file
      dataset/Norder=k/Dir=d/Npix=n.parquet   the rows of HEALPix pixel n at order k

Rows are sorted by ``(_healpix_29, *sort_columns)`` and, where those tie, by every other
column, so the bytes written depend only on the set of rows, not on their input order nor
on the number of threads.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import InputError, ReleaseError
from .manifest import manifest_text
from .partition import NPIX29, Partition, argsort_healpix, healpix29, plan_partitions
from .schema import HEALPIX_COLUMN, healpix_field, with_field_docs

HATS_VERSION = "v1.0"
HATS_RELEASE_DATE = "2025-08-22"
MAX_ORDER = 12


@dataclass
class CatalogInfo:
    """What :func:`write_hats_catalog` wrote."""

    name: str
    n_rows: int
    partitions: list[Partition]
    files: list[str] = field(default_factory=list)
    """Every file written, relative to the catalog directory, sorted."""

    @property
    def max_order(self) -> int:
        return max((p.order for p in self.partitions), default=0)


def partition_path(order: int, pixel: int) -> str:
    """Relative path of a partition file inside a catalog directory."""
    return f"dataset/Norder={order}/Dir={(pixel // 10_000) * 10_000}/Npix={pixel}.parquet"


def _software_version() -> str:
    from .. import __version__

    return __version__


# --------------------------------------------------------------------------- rows


def _add_healpix(table: pa.Table, ra_column: str, dec_column: str, name: str) -> pa.Table:
    """``table`` with ``_healpix_29`` as its first column (computed if absent)."""
    for col in (ra_column, dec_column):
        if col not in table.column_names:
            raise InputError(f"missing position column {col!r}", path=name, keyword=col)
        t = table.schema.field(col).type
        if not (pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t)):
            raise InputError(f"position column must be numeric degrees, not {t}", path=name, keyword=col)
    if HEALPIX_COLUMN in table.column_names:
        try:
            hp = table[HEALPIX_COLUMN].cast(pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise InputError("must hold int64 HEALPix indices", path=name, keyword=HEALPIX_COLUMN) from None
        values = hp.to_numpy(zero_copy_only=False) if hp.null_count == 0 else None
        if values is None or (values.size and (values.min() < 0 or values.max() >= NPIX29)):
            raise InputError("must hold order-29 indices in [0, 12*4**29) without nulls",
                             path=name, keyword=HEALPIX_COLUMN)
        table = table.drop_columns([HEALPIX_COLUMN])
    else:
        ra = table[ra_column]
        dec = table[dec_column]
        if ra.null_count or dec.null_count:
            raise InputError("null positions are not allowed", path=name, keyword=f"{ra_column}/{dec_column}")
        ra_np = ra.cast(pa.float64()).to_numpy()
        dec_np = dec.cast(pa.float64()).to_numpy()
        bad = ~(np.isfinite(ra_np) & np.isfinite(dec_np)) | (np.abs(dec_np) > 90.0)
        if bad.any():
            raise InputError(
                f"{int(bad.sum())} rows with non-finite or out-of-range positions",
                path=name,
                keyword=f"{ra_column}/{dec_column}",
            )
        hp = pa.array(healpix29(ra_np, dec_np), type=pa.int64())
    return table.add_column(0, healpix_field(), hp)


def _adjacent_equal(keys: pa.Table) -> np.ndarray:
    """``out[i]`` is True when rows i and i+1 of ``keys`` are equal in every column
    (null equals null and NaN equals NaN here: such rows are unordered ties)."""
    n = keys.num_rows
    out = np.ones(max(n - 1, 0), dtype=bool)
    for col in keys.columns:
        a, b = col.slice(0, n - 1), col.slice(1)
        eq = pc.fill_null(pc.equal(a, b), False)
        if col.null_count:
            eq = pc.or_(eq, pc.and_(pc.is_null(a), pc.is_null(b)))
        if pa.types.is_floating(col.type):
            eq = pc.or_(eq, pc.fill_null(pc.and_(pc.is_nan(a), pc.is_nan(b)), False))
        out &= eq.to_numpy(zero_copy_only=False).astype(bool, copy=False)
    return out


def _refine(table: pa.Table, order: np.ndarray, tie: np.ndarray, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Sort the runs of tied rows (``tie`` between sorted neighbours) by ``keys``; return the
    new order and the ties left between neighbours equal on every key."""
    in_tie = np.zeros(order.size, dtype=bool)
    in_tie[1:] |= tie
    in_tie[:-1] |= tie
    pos = np.flatnonzero(in_tie)
    sub = table.select(keys).take(order[pos])
    perm = pc.sort_indices(sub, sort_keys=[(c, "ascending") for c in keys]).to_numpy()
    order = order.copy()
    order[pos] = order[pos][perm]
    # ties left: neighbours inside the runs, equal on all keys (runs differ in _healpix_29)
    left = np.zeros_like(tie)
    sub_eq = _adjacent_equal(sub.take(perm))
    inner = pos[1:] == pos[:-1] + 1
    left[pos[:-1][inner]] = sub_eq[inner]
    return order, left


def _row_order(table: pa.Table, sort_columns: tuple[str, ...], name: str) -> np.ndarray:
    """Row indices sorting ``table`` by (_healpix_29, *sort_columns, every other column).

    The bulk of the work is one argsort of ``_healpix_29`` (numba radix sort); only runs of rows sharing a
    ``_healpix_29`` value are sorted further, first by ``sort_columns`` (reading only those
    columns) and, where rows still tie, by every other column. The result is a total order
    of the row values (identical rows are interchangeable), whatever the input order.
    """
    for col in sort_columns:
        if col not in table.column_names:
            raise InputError("unknown sort column", path=name, keyword=col)
    order, hs = argsort_healpix(table[HEALPIX_COLUMN].to_numpy())
    if hs.size < 2:
        return order
    return break_ties(table, order, hs, sort_columns)


def break_ties(table: pa.Table, order: np.ndarray, hs: np.ndarray, sort_columns: tuple[str, ...]) -> np.ndarray:
    """``order`` (row indices of ``table`` sorted by _healpix_29, whose sorted values are
    ``hs``) with the runs of equal _healpix_29 sorted further by ``sort_columns``, then by
    every other sortable column."""
    tie = hs[1:] == hs[:-1]
    if tie.any() and sort_columns:
        order, tie = _refine(table, order, tie, [HEALPIX_COLUMN, *sort_columns])
    if tie.any():
        rest = [c for c in table.column_names if c != HEALPIX_COLUMN and c not in sort_columns]
        keys = [HEALPIX_COLUMN, *sort_columns, *(c for c in rest if _sortable(table.schema.field(c).type))]
        order, _ = _refine(table, order, tie, keys)
    return order


def _sortable(t: pa.DataType) -> bool:
    return (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_boolean(t)
        or pa.types.is_temporal(t)
        or pa.types.is_binary(t)
    )


def _clean_schema(table: pa.Table) -> pa.Table:
    """Drop pandas index metadata (wrong after sorting/slicing); give every field unit+description."""
    meta = dict(table.schema.metadata or {})
    meta.pop(b"pandas", None)
    schema = with_field_docs(table.schema).with_metadata(meta or None)
    return pa.Table.from_arrays(table.columns, schema=schema)


# --------------------------------------------------------------------------- files


def _write_options(schema: pa.Schema, row_group_rows: int, compression: str,
                   stats_columns: tuple[str, ...] | None = None) -> dict:
    """``pq.write_table`` options of every release file: dictionary encoding only for strings
    (random floats never gain from it, and trying costs time), footer statistics only for
    ``stats_columns`` when given (the columns that prune: ``_healpix_29``, positions, sort
    keys), else for every column."""
    stats: bool | list[str] = True
    if stats_columns is not None:
        stats = [c for c in dict.fromkeys(stats_columns) if c in schema.names] or False
    dictionary = [
        f.name
        for f in schema
        if pa.types.is_string(f.type) or pa.types.is_large_string(f.type) or pa.types.is_dictionary(f.type)
    ]
    return {
        "row_group_size": max(1, int(row_group_rows)),
        "compression": compression,
        "use_dictionary": dictionary or False,
        "write_statistics": stats,
        "sorting_columns": [pq.SortingColumn(0)],
        "store_schema": True,
        "write_batch_size": 65536,
    }


def _write_partition(table: pa.Table, path: Path, options: dict) -> pq.FileMetaData:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, **options)
    return pq.read_metadata(path)


def _properties_text(
    *, name: str, catalog_type: str, n_rows: int, ra_column: str, dec_column: str,
    max_rows: int, partitions: list[Partition], est_kb: int,
) -> str:
    """hats.properties (java properties) with a fixed key order and no creation time."""
    max_order = max((p.order for p in partitions), default=0)
    sky = sum(1.0 / (12 * 4**p.order) for p in partitions)
    items = [
        ("obs_collection", name),
        ("dataproduct_type", catalog_type),
        ("hats_nrows", n_rows),
        ("hats_col_ra", ra_column),
        ("hats_col_dec", dec_column),
        ("hats_col_healpix", HEALPIX_COLUMN),
        ("hats_col_healpix_order", 29),
        ("hats_npix_suffix", ".parquet"),
        ("hats_max_rows", max_rows),
        ("hats_order", max_order),
        ("moc_sky_fraction", f"{sky:.5f}"),
        ("hats_builder", f"minidr v{_software_version()}"),
        ("hats_estsize", est_kb),
        ("hats_release_date", HATS_RELEASE_DATE),
        ("hats_version", HATS_VERSION),
    ]
    lines = ["#HATS catalog"] + [f"{k}={_prop_escape(str(v))}" for k, v in items]
    return "\n".join(lines) + "\n"


def _prop_escape(value: str) -> str:
    out = value.replace("\\", "\\\\").replace("\n", "\\n")
    for ch in ":=#!":
        out = out.replace(ch, "\\" + ch)
    return out


def write_hats_catalog(
    table: pa.Table,
    directory: Path,
    *,
    name: str,
    ra_column: str,
    dec_column: str,
    partition_rows: int,
    row_group_rows: int = 20000,
    compression: str = "zstd",
    sort_columns: tuple[str, ...] = (),
    catalog_type: str | None = None,
    jobs: int | None = None,
) -> CatalogInfo:
    """Write ``table`` as a HATS catalog in ``directory`` (which must not exist or be empty).

    Adds ``_healpix_29`` (nested HEALPix index at order 29 of ``ra_column``/``dec_column``,
    degrees) as the first column if absent, sorts the rows, plans partitions of at most
    ``partition_rows`` rows (down to order 12) and writes one Parquet file per partition
    with row groups of ``row_group_rows`` rows and column statistics, then ``_metadata``,
    ``_common_metadata``, ``partition_info.csv`` and ``hats.properties``.

    ``catalog_type`` is the HATS ``dataproduct_type`` (``object`` or ``source``; default:
    ``source`` when the name contains "source", else ``object``). ``jobs`` threads write
    partition files (default: up to 4); the bytes do not depend on it.
    """
    directory = Path(directory)
    if int(partition_rows) < 1:
        raise InputError("partition_rows must be >= 1", path=name, keyword="partition_rows")
    if directory.exists() and any(directory.iterdir()):
        raise ReleaseError(f"{directory}: catalog directory already exists and is not empty")
    if catalog_type is None:
        catalog_type = "source" if "source" in name.lower() else "object"
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])

    table = _add_healpix(table, ra_column, dec_column, name)
    order = _row_order(table, tuple(sort_columns), name)
    # one chunk per column: Arrow's take on a chunked column concatenates all its chunks
    # first, so gathering each partition from a chunked table would copy the table once per
    # partition
    table = _clean_schema(table).combine_chunks()
    identity = bool(np.all(order[1:] > order[:-1]))
    hp = table[HEALPIX_COLUMN].to_numpy()
    partitions = plan_partitions(hp if identity else hp[order], int(partition_rows), MAX_ORDER)
    del hp

    directory.mkdir(parents=True, exist_ok=True)
    options = _write_options(table.schema, row_group_rows, compression,
                             stats_columns=(HEALPIX_COLUMN, ra_column, dec_column, *sort_columns))
    rel_paths = [partition_path(p.order, p.pixel) for p in partitions]
    n_threads = max(1, min(int(jobs) if jobs else min(4, os.cpu_count() or 1), len(partitions) or 1))

    def work(i: int) -> pq.FileMetaData:
        # each thread gathers its own partition's rows
        p = partitions[i]
        if identity:
            rows = table.slice(p.start, p.n_rows)
        else:
            rows = table.take(pa.array(order[p.start:p.stop]))
        return _write_partition(rows, directory / rel_paths[i], options)

    if n_threads == 1:
        metas = [work(i) for i in range(len(partitions))]
    else:
        # largest partitions first keeps the threads evenly loaded; results stay in plan order
        with ThreadPoolExecutor(n_threads) as pool:
            futures = {i: pool.submit(work, i) for i in sorted(range(len(partitions)), key=lambda k: -partitions[k].n_rows)}
            metas = [futures[i].result() for i in range(len(partitions))]

    for meta, rel in zip(metas, rel_paths):
        meta.set_file_path(rel[len("dataset/"):])
    dataset = directory / "dataset"
    dataset.mkdir(parents=True, exist_ok=True)
    pq.write_metadata(table.schema, dataset / "_common_metadata")
    pq.write_metadata(table.schema, dataset / "_metadata", metadata_collector=metas)

    lines = ["Norder,Npix"] + [f"{p.order},{p.pixel}" for p in sorted(partitions, key=lambda q: (q.order, q.pixel))]
    (directory / "partition_info.csv").write_text("\n".join(lines) + "\n")

    est_kb = sum((directory / r).stat().st_size for r in rel_paths) // 1024
    (directory / "hats.properties").write_text(
        _properties_text(
            name=name, catalog_type=catalog_type, n_rows=table.num_rows, ra_column=ra_column,
            dec_column=dec_column, max_rows=int(partition_rows), partitions=partitions, est_kb=est_kb,
        )
    )
    files = sorted(
        str(p.relative_to(directory)).replace(os.sep, "/") for p in directory.rglob("*") if p.is_file()
    )
    return CatalogInfo(name=name, n_rows=table.num_rows, partitions=partitions, files=files)


# --------------------------------------------------------------------------- releases

FLAT_SORT = {"Visit": ("visit",), "CcdVisit": ("ccdVisitId",)}
CATALOG_SORT = {"Object": ("objectId",), "Source": ("sourceId",), "ForcedSource": ("forcedSourceId",)}


def _object_bands(table: pa.Table) -> list[str]:
    suffix = "_psfFluxMean"
    return [c[: -len(suffix)] for c in table.column_names if c.endswith(suffix)]


def _conform_known(name: str, table: pa.Table) -> pa.Table:
    """Release tables with a known schema are reduced to it (units, descriptions, order)."""
    from .schema import TABLES, conform, schema_for

    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if name not in TABLES:
        return table
    bands = _object_bands(table) if name == "Object" else None
    return conform(table, schema_for(name, bands), name=name)


def _forced_positions(forced: pa.Table, obj: pa.Table, ra: str, dec: str) -> pa.Table:
    """ForcedSource rows given the position of their Object (``coord_ra``/``coord_dec``)."""
    oid = obj["objectId"].to_numpy()
    order = np.argsort(oid, kind="stable")
    sorted_ids = oid[order]
    want = forced["objectId"].to_numpy()
    pos = np.searchsorted(sorted_ids, want)
    pos = np.clip(pos, 0, max(len(sorted_ids) - 1, 0))
    if len(want) and (len(sorted_ids) == 0 or np.any(sorted_ids[pos] != want)):
        raise InputError("ForcedSource rows whose objectId is not in Object", keyword="objectId")
    rows = order[pos]
    forced = forced.drop_columns([c for c in ("coord_ra", "coord_dec") if c in forced.column_names])
    forced = forced.append_column("coord_ra", pa.array(obj[ra].to_numpy()[rows], type=pa.float64()))
    return forced.append_column("coord_dec", pa.array(obj[dec].to_numpy()[rows], type=pa.float64()))


def _write_flat(table: pa.Table, path: Path, sort_columns: tuple[str, ...], row_group_rows: int, compression: str):
    """One plain Parquet file, rows in a deterministic order (``sort_columns``, then all columns)."""
    keys = [c for c in sort_columns if c in table.column_names]
    keys += [c for c in table.column_names if c not in keys and _sortable(table.schema.field(c).type)]
    if keys and table.num_rows > 1:
        table = table.take(pc.sort_indices(table, sort_keys=[(c, "ascending") for c in keys]))
    table = _clean_schema(table).combine_chunks()
    options = _write_options(table.schema, row_group_rows, compression)
    options.pop("sorting_columns")
    pq.write_table(table, path, **options)


def _file_entries(root: Path) -> list[dict]:
    from .._io import sha256_file

    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file():
            rel = str(p.relative_to(root)).replace(os.sep, "/")
            out.append({"path": rel, "sha256": sha256_file(p), "size": p.stat().st_size})
    return sorted(out, key=lambda e: e["path"])


def _freeze(root: Path) -> None:
    """Make every file of a finished release read-only (directories stay writable)."""
    for p in root.rglob("*"):
        if p.is_file():
            p.chmod(0o444)


def _remove_stale_staging(parent: Path, name: str) -> None:
    """Remove ``.NAME.staging-PID`` directories left by processes that no longer run."""
    for p in parent.glob(f".{name}.staging-*"):
        try:
            pid = int(p.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        alive = True
        if pid != os.getpid():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                alive = False
            except PermissionError:
                alive = True
        else:
            alive = False
        if not alive:
            shutil.rmtree(p, ignore_errors=True)


def write_release(
    final_dir: Path,
    *,
    catalogs: dict[str, tuple[pa.Table, str, str]],
    tables: dict[str, pa.Table],
    manifest: dict,
    partition_rows: int,
    row_group_rows: int = 20000,
    compression: str = "zstd",
    jobs: int | None = None,
) -> Path:
    """Publish an immutable release in ``final_dir`` and return that path.

    ``catalogs`` maps a table name to ``(table, ra_column, dec_column)``: each becomes a
    HATS catalog ``final_dir/NAME/``. ``tables`` maps a name to a flat table written as
    ``final_dir/NAME.parquet``. Object, Source, ForcedSource, Visit and CcdVisit are first
    reduced to their published schema (:mod:`minidr.release.schema`); a ForcedSource
    without ``coord_ra``/``coord_dec`` takes them from Object through ``objectId``.
    Everything is written in a staging directory beside ``final_dir`` and renamed into
    place only when complete, ``manifest.json`` last: ``manifest`` plus ``name``,
    ``created`` (UTC ISO time) and ``outputs`` (every file's path, sha256, size; rows per
    table). An existing ``final_dir`` raises :class:`ReleaseError`.
    """
    final_dir = Path(final_dir)
    name = final_dir.name
    if final_dir.exists():
        raise ReleaseError(f"release {name} already exists at {final_dir}; releases are immutable, choose another name")
    for tname in list(catalogs) + list(tables):
        if not tname or "/" in tname or tname.startswith(".") or tname == "manifest":
            raise InputError(f"bad table name {tname!r}")
    if set(catalogs) & set(tables):
        raise InputError(f"table(s) {sorted(set(catalogs) & set(tables))} given both as catalog and flat table")
    parent = final_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(parent, name)
    staging = parent / f".{name}.staging-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        table_info: dict[str, dict] = {}
        conformed = {k: (_conform_known(k, t) if k != "ForcedSource" else t, ra, dec)
                     for k, (t, ra, dec) in catalogs.items()}
        if "ForcedSource" in conformed:
            fs, ra, dec = conformed["ForcedSource"]
            if isinstance(fs, pa.RecordBatch):
                fs = pa.Table.from_batches([fs])
            if (ra not in fs.column_names or dec not in fs.column_names) and "Object" in conformed:
                obj, ora, odec = conformed["Object"]
                fs = _forced_positions(fs, obj, ora, odec)
                ra, dec = "coord_ra", "coord_dec"
            conformed["ForcedSource"] = (_conform_known("ForcedSource", fs), ra, dec)
        for cname in sorted(conformed):
            table, ra, dec = conformed[cname]
            info = write_hats_catalog(
                table, staging / cname, name=cname, ra_column=ra, dec_column=dec,
                partition_rows=partition_rows, row_group_rows=row_group_rows, compression=compression,
                sort_columns=tuple(c for c in CATALOG_SORT.get(cname, ()) if c in table.column_names),
                jobs=jobs,
            )
            table_info[cname] = {
                "format": "hats", "path": cname, "rows": info.n_rows,
                "partitions": len(info.partitions), "max_order": info.max_order,
            }
        for tname in sorted(tables):
            table = _conform_known(tname, tables[tname])
            _write_flat(table, staging / f"{tname}.parquet", FLAT_SORT.get(tname, ()), row_group_rows, compression)
            table_info[tname] = {"format": "parquet", "path": f"{tname}.parquet", "rows": table.num_rows}

        doc = dict(manifest)
        doc["name"] = name
        doc["created"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        doc["outputs"] = {"files": _file_entries(staging), "tables": table_info}
        (staging / "manifest.json").write_text(manifest_text(doc))
        _freeze(staging)
        if final_dir.exists():
            raise ReleaseError(f"release {name} already exists at {final_dir}; releases are immutable, choose another name")
        os.rename(staging, final_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final_dir
