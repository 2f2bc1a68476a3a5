"""Cross-match a user's list of positions against a release table (nearest within a radius).

Two phases, as every spatial query here. Coarse: the user positions' HEALPix cells at an
order whose cells are >= 2x the radius (:func:`minidr.query.rewrite.neighbour_order`),
plus their 8 neighbours, select the partition files to read; only their ``_healpix_29``
and position columns are read. Exact: a numba kernel (:func:`minidr.sky.kernels.nearest_in_cells`)
walks, for each user row, the catalogue rows of those 9 cells (binary search on the
cell-sorted rows) and keeps the nearest within the radius (ties: the lower ``_healpix_29``).
Finally only the row groups holding matches are read in full.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from cdshealpix import nested

from ..errors import QueryError
from ..sky import kernels as K
from ..sky.healpix import ORDER_MAX, healpix29
from ..sky.regions import cells_to_ranges29
from .rewrite import neighbour_order

SEPARATION_META = {b"unit": b"arcsec", b"description": b"angular separation between the user position and its match"}


def to_arrow(positions) -> pa.Table:
    """A pyarrow Table from a pyarrow Table/RecordBatch, a pandas DataFrame or an astropy Table."""
    if isinstance(positions, pa.Table):
        return positions
    if isinstance(positions, pa.RecordBatch):
        return pa.Table.from_batches([positions])
    mod = type(positions).__module__
    if mod.startswith("pandas"):
        return pa.Table.from_pandas(positions, preserve_index=False)
    if mod.startswith("astropy"):
        cols, fields = [], []
        for name in positions.colnames:
            col = positions[name]
            data = np.asarray(col)
            if data.dtype.byteorder not in ("=", "|"):
                data = data.astype(data.dtype.newbyteorder("="))
            if data.dtype.kind == "S":
                data = np.char.decode(data, "utf-8", errors="replace")
            mask = getattr(col, "mask", None)
            arr = pa.array(data if data.ndim == 1 else list(data), mask=np.asarray(mask) if mask is not None and np.ndim(mask) == 1 else None)
            unit = getattr(col, "unit", None)
            meta = {b"unit": str(unit).encode()} if unit is not None else None
            fields.append(pa.field(name, arr.type, metadata=meta))
            cols.append(arr)
        return pa.Table.from_arrays(cols, schema=pa.schema(fields))
    if isinstance(positions, dict):
        return pa.table(positions)
    raise QueryError(f"xmatch needs a pyarrow Table, pandas DataFrame or astropy Table, got {type(positions).__name__}")


def _column(table: pa.Table, name: str, what: str) -> np.ndarray:
    names = {n.lower(): n for n in table.column_names}
    if name.lower() not in names:
        raise QueryError(f"xmatch input has no {what} column {name!r}; columns: {', '.join(table.column_names)}")
    col = table[names[name.lower()]]
    try:
        arr = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise QueryError(f"xmatch input column {name!r} must be numeric degrees") from None
    return np.asarray(arr, dtype=np.float64)


def xmatch(release, positions, *, radius_arcsec: float = 1.0, table: str = "Object", ra_column: str = "ra",
           dec_column: str = "dec", columns=None) -> pa.Table:
    """See :meth:`minidr.query.Release.xmatch`."""
    user = to_arrow(positions)
    cat = release._catalog(table)
    if not cat.ra:
        raise QueryError(f"table {cat.name} has no position columns to match against")
    try:
        radius = float(radius_arcsec)
    except (TypeError, ValueError):
        raise QueryError(f"xmatch radius must be a number of arcsec, got {radius_arcsec!r}") from None
    if not 0 < radius <= 3600.0:
        raise QueryError(f"xmatch radius must be > 0 and <= 3600 arcsec, got {radius_arcsec!r}")
    ra = _column(user, ra_column, "RA")
    dec = _column(user, dec_column, "Dec")
    n = user.num_rows
    good = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90.0)
    idx_good = np.flatnonzero(good)
    r_deg = radius / 3600.0
    k = neighbour_order(r_deg, max_order=20)
    shift = 2 * (ORDER_MAX - k)

    if columns is None:
        cat_cols = [c for c in cat.schema.names if c != "_healpix_29"]
    else:
        if isinstance(columns, str):
            columns = [c.strip() for c in columns.split(",") if c.strip()]
        names = {c.lower(): c for c in cat.schema.names}
        bad = [c for c in columns if c.lower() not in names]
        if bad:
            raise QueryError(f"unknown column {bad[0]!r} of {cat.name}; columns: {', '.join(cat.schema.names)}")
        cat_cols = [names[c.lower()] for c in columns]
    taken = {c.lower() for c in user.column_names}
    out_names = []
    for c in cat_cols:
        name = c if c.lower() not in taken else f"{c}_{cat.name}"
        out_names.append(name)
        taken.add(name.lower())
    sep_name = "separation" if "separation" not in {c.lower() for c in user.column_names} else f"separation_{cat.name}"

    take = np.full(n, -1, dtype=np.int64)
    seps = np.full(n, np.nan)
    matched = None
    if idx_good.size:
        ura = ra if idx_good.size == n else np.ascontiguousarray(ra[idx_good])
        udec = dec if idx_good.size == n else np.ascontiguousarray(dec[idx_good])
        ucell = healpix29(ura, udec) >> shift
        nb = np.asarray(nested.neighbours(ucell.astype(np.uint64), k), dtype=np.int64)  # (m, 9), -1 = none
        ko = min(k, int(cat.orders.max())) if cat.orders is not None and cat.orders.size else k
        cells = _unique(nb[nb >= 0] >> (2 * (k - ko)))
        lo, hi = cells_to_ranges29(cells, np.full(cells.size, ko))
        files = cat.files_for(lo, hi)
        if files:
            order = np.argsort([_range_lo(cat, f) for f in files], kind="stable")
            files = [files[i] for i in order]
            pos = [pq.read_table(f, columns=["_healpix_29", cat.ra, cat.dec]) for f in files]
            counts = np.array([t.num_rows for t in pos], dtype=np.int64)
            h = np.concatenate([t["_healpix_29"].to_numpy() for t in pos]).astype(np.int64, copy=False)
            cra = np.concatenate([t[cat.ra].to_numpy() for t in pos]).astype(np.float64, copy=False)
            cdec = np.concatenate([t[cat.dec].to_numpy() for t in pos]).astype(np.float64, copy=False)
            del pos
            ccell = h >> shift
            perm = None
            if ccell.size > 1 and np.any(ccell[1:] < ccell[:-1]):
                perm = np.argsort(h, kind="stable")
                ccell, cra, cdec = ccell[perm], cra[perm], cdec[perm]
            # visit the user rows in cell order: the binary searches then walk the
            # catalogue in order (cache friendly) instead of jumping at random
            uo = np.argsort(ucell, kind="stable")
            best, sep = K.nearest_in_cells(ccell, cra, cdec, nb, ura, udec, r_deg, uo)
            hit = best >= 0
            gidx = best[hit] if perm is None else perm[best[hit]]
            matched, where = _fetch_rows(files, counts, gidx, cat_cols)
            take[idx_good[hit]] = where
            seps[idx_good[hit]] = sep[hit] * 3600.0
    if matched is None:
        fields = [pa.field(c, cat.schema.field(c).type) for c in cat_cols]
        matched = pa.Table.from_pylist([], schema=pa.schema(fields))
    matched = matched.rename_columns(out_names)
    indices = pa.array(take, mask=take < 0, type=pa.int64())
    picked = matched.take(indices) if matched.num_rows else pa.Table.from_arrays(
        [pa.nulls(n, type=f.type) for f in matched.schema], schema=matched.schema
    )
    sep_col = pa.array(seps, mask=~np.isfinite(seps), type=pa.float64())
    fields = list(user.schema)
    cols = list(user.columns)
    for c, o in zip(cat_cols, out_names):
        f = cat.schema.field(c)
        fields.append(pa.field(o, picked[o].type, metadata=f.metadata))
        cols.append(picked[o])
    fields.append(pa.field(sep_name, pa.float64(), metadata=SEPARATION_META))
    cols.append(sep_col)
    meta = dict(user.schema.metadata or {})
    meta.pop(b"pandas", None)
    meta[b"truncated"] = b"false"
    return pa.Table.from_arrays(cols, schema=pa.schema(fields, metadata=meta))


def _range_lo(cat, f: str) -> int:
    i = cat.files.index(f)
    return int(cat.pixels[i]) << (2 * (ORDER_MAX - int(cat.orders[i])))


def _fetch_rows(files, counts, gidx, columns) -> tuple[pa.Table, np.ndarray]:
    """Rows ``gidx`` (indices into the concatenation of ``files``) with ``columns``, reading
    only the row groups that hold them. Returns the rows (sorted by index) and, for each
    entry of ``gidx``, its row in that table."""
    order = np.argsort(gidx, kind="stable")
    srt = gidx[order]
    first = np.ones(srt.size, dtype=bool)
    first[1:] = srt[1:] != srt[:-1]
    uniq = srt[first]
    inv = np.empty(gidx.size, dtype=np.int64)
    inv[order] = np.cumsum(first) - 1
    starts = np.concatenate([[0], np.cumsum(counts)])
    parts = []
    for fi in _unique(np.searchsorted(starts, uniq, side="right") - 1):
        rows = uniq[(uniq >= starts[fi]) & (uniq < starts[fi + 1])] - starts[fi]
        pf = pq.ParquetFile(files[fi])
        rg_rows = np.array([pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)])
        rg_start = np.concatenate([[0], np.cumsum(rg_rows)])
        rgs = _unique(np.searchsorted(rg_start, rows, side="right") - 1)
        t = pf.read_row_groups(list(rgs), columns=list(columns))
        # position of each wanted row inside the concatenation of the row groups read
        offs = np.concatenate([[0], np.cumsum(rg_rows[rgs])])
        rg_of = np.searchsorted(rg_start, rows, side="right") - 1
        local = offs[np.searchsorted(rgs, rg_of)] + (rows - rg_start[rg_of])
        parts.append(t.take(pa.array(local)))
    table = pa.concat_tables(parts) if parts else None
    return table, inv


def _unique(a) -> np.ndarray:
    """Sorted unique values (sort-based: numpy's hash-based unique is slow on large int64)."""
    a = np.sort(np.asarray(a).ravel())
    if a.size == 0:
        return a
    keep = np.ones(a.size, dtype=bool)
    keep[1:] = a[1:] != a[:-1]
    return a[keep]
