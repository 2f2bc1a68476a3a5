"""Cross-match a user's list of positions against a release table (nearest within a radius).

Two phases, as every spatial query here. Coarse: the user positions' HEALPix cells at an
order whose cells are >= 2x the radius (:func:`minidr.query.rewrite.neighbour_order`),
plus their 8 neighbours, select the partition files to read; only their ``_healpix_29``
and position columns are read. Exact: a numba kernel (:func:`minidr.query.kernels.nearest_in_cells`)
walks, for each user row (taken in cell order), the catalogue rows of those 9 cells (a
galloping search from where the previous search ended, on the cell-sorted rows) and keeps
the nearest within the radius (ties: the lower ``_healpix_29``).
Finally only the row groups holding matches are read in full.
"""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from cdshealpix import nested

from ..errors import QueryError
from ..sky.healpix import ORDER_MAX, healpix_index
from . import kernels as QK
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
    if idx_good.size and cat.orders is not None:
        ura = ra if idx_good.size == n else ra[idx_good]
        udec = dec if idx_good.size == n else dec[idx_good]
        # the user rows in cell order: the kernel's searches then walk the catalogue
        # forwards, it reads the user arrays in order, and the rows of one partition
        # are one slice
        ucell = healpix_index(ura, udec, k)
        uo = np.argsort(ucell)  # any order within a cell will do: quicksort, not mergesort
        ucell, ura, udec = ucell[uo], ura[uo], udec[uo]
        nb = np.asarray(nested.neighbours(ucell.astype(np.uint64), k), dtype=np.int64)  # (m, 9), -1 = none
        best, sep, files, counts = _match_by_partition(cat, ucell, nb, ura, udec, r_deg, shift)
        del nb
        hit = best >= 0
        if hit.any():
            matched, where = _fetch_rows(files, counts, best[hit], cat_cols, int(counts.sum()))
            rows = idx_good[uo[hit]]  # user rows of the matches
            take[rows] = where
            seps[rows] = sep[hit] * 3600.0
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


def _match_by_partition(cat, ucell, nb, ura, udec, r_deg: float, shift: int):
    """Nearest catalogue row of each user row, one partition file at a time.

    Each file's positions are read once and matched against the user rows whose 9 cells
    ``nb`` touch it (the rows inside it, and across its edges some of its neighbours' rows),
    keeping the best so far per user row: memory holds one partition's positions, never the
    whole table. Returns (index into the concatenation of ``files`` or -1, separation [deg]
    or NaN, ``files`` (sorted by sky range), rows per file)."""
    m = ucell.size
    fshift = 2 * (ORDER_MAX - cat.orders)
    order = np.argsort(cat.pixels << fshift, kind="stable")
    flo = cat.pixels[order] << fshift[order]  # order-29 range of each file
    fhi = (cat.pixels[order] + 1) << fshift[order]
    files = [cat.files[i] for i in order]
    counts = np.array([cat.footer(int(i)).num_rows for i in order], dtype=np.int64)
    gstart = np.concatenate([[0], np.cumsum(counts)])
    best = np.full(m, -1, dtype=np.int64)
    best_h = np.full(m, 2.0)
    sep = np.full(m, np.nan)
    for f, users in _users_per_file(nb, flo, fhi, shift):
        ccell, cra, cdec, perm = _read_positions(files[f], cat.ra, cat.dec, shift)
        start = int(gstart[f])
        QK.nearest_in_cells(ccell, cra, cdec, start, users, nb, ura, udec, r_deg, best, best_h, sep)
        if perm is not None:  # a file not sorted by cell: its matches back to file rows
            mine = (best >= gstart[f]) & (best < gstart[f + 1])
            best[mine] = gstart[f] + perm[best[mine] - gstart[f]]
    return best, sep, files, counts


def _users_per_file(nb: np.ndarray, flo: np.ndarray, fhi: np.ndarray, shift: int):
    """(file, sorted user rows) for every file that the cells ``nb`` (m, 9) of some user rows
    touch; files ``[flo, fhi)`` are sorted order-29 ranges, the cells are at order
    ``29 - shift / 2``."""
    m = nb.shape[0]
    first, last = QK.file_span(nb, shift, flo, fhi)
    one = first == last  # the usual case: every cell of the row in the same single file
    pf, pu = [first[one]], [np.flatnonzero(one)]
    rest = np.flatnonzero(~one & (last >= 0))
    if rest.size:  # rows across a file edge: one pair per (file, row)
        sub = nb[rest]
        valid = sub >= 0
        cell = np.where(valid, sub, 0)
        # files overlapping a cell: from the first ending after its start to the last
        # starting before its end (several when partitions are finer than the cells)
        i0 = np.searchsorted(fhi, cell << shift, side="right")
        i1 = np.where(valid, np.searchsorted(flo, (cell + 1) << shift, side="left"), i0)
        a, b = i0.ravel(), i1.ravel()
        span = np.maximum(b - a, 0)
        rows = np.repeat(np.repeat(rest, nb.shape[1]), span)
        step = np.arange(span.sum()) - np.repeat(np.cumsum(span) - span, span)
        pf.append(np.repeat(a, span) + step)
        pu.append(rows)
    key = np.concatenate(pf).astype(np.int64) * m + np.concatenate(pu)
    key = _unique(key)
    fcol, ucol = key // m, key % m
    cuts = np.concatenate([[0], np.flatnonzero(np.diff(fcol)) + 1, [key.size]])
    for a, b in itertools.pairwise(cuts):
        yield int(fcol[a]), np.ascontiguousarray(ucol[a:b])


def _read_positions(path: str, ra: str, dec: str, shift: int):
    """(cell at the user order, ra, dec [deg], perm) of the rows of one partition file,
    sorted by cell (``perm``: file row of each sorted row, None when the file already is)."""
    t = pq.read_table(path, columns=["_healpix_29", ra, dec])
    cell = t["_healpix_29"].to_numpy().astype(np.int64, copy=False) >> shift
    cra = np.ascontiguousarray(t[ra].to_numpy(), dtype=np.float64)
    cdec = np.ascontiguousarray(t[dec].to_numpy(), dtype=np.float64)
    perm = None
    if cell.size > 1 and np.any(cell[1:] < cell[:-1]):
        perm = np.argsort(cell, kind="stable")
        cell, cra, cdec = cell[perm], cra[perm], cdec[perm]
    return cell, cra, cdec, perm


def _fetch_rows(files, counts, gidx, columns, n_rows: int) -> tuple[pa.Table, np.ndarray]:
    """Rows ``gidx`` (indices into the concatenation of ``files``, ``n_rows`` rows in all)
    with ``columns``, reading only the row groups that hold them. Returns the rows (sorted
    by index) and, for each entry of ``gidx``, its row in that table."""
    # unique sorted indices and the inverse map through a mask over all rows: O(n_rows),
    # no sort of the matches
    mark = np.zeros(n_rows, dtype=bool)
    mark[gidx] = True
    uniq = np.flatnonzero(mark)
    rank = np.cumsum(mark, dtype=np.int32 if n_rows < 2**31 else np.int64)
    inv = rank[gidx].astype(np.int64) - 1
    del mark, rank
    starts = np.concatenate([[0], np.cumsum(counts)])
    cut = np.searchsorted(uniq, starts)  # uniq[cut[f]:cut[f + 1]] lie in file f
    parts = []
    for fi in np.flatnonzero(np.diff(cut) > 0):
        rows = uniq[cut[fi]:cut[fi + 1]] - starts[fi]
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
