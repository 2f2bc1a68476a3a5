"""Cross-match a user's list of positions against a release table (nearest within a radius).

The user's rows are registered in DuckDB with their order-29 HEALPix index. Each user row
is expanded to its cell and the 8 neighbours at an order whose cells are >= 4x the radius
(:func:`minidr.query.rewrite.neighbour_order`), equi-joined to the table's rows through
their own cell, then tested exactly (``cone``) and the nearest candidate kept (ties: the
lower first column, e.g. objectId). Only the partitions around the user positions are read.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import QueryError
from ..sky.healpix import ORDER_MAX, healpix29
from ..sky.regions import cells_to_ranges29, coarsen_ranges, dilate
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
           dec_column: str = "dec") -> pa.Table:
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

    cat_cols = [c for c in cat.schema.names if c != "_healpix_29"]
    taken = {c.lower() for c in user.column_names}
    out_names = []
    for c in cat_cols:
        name = c if c.lower() not in taken else f"{c}_{cat.name}"
        out_names.append(name)
        taken.add(name.lower())
    sep_name = "separation" if "separation" not in {c.lower() for c in user.column_names} else f"separation_{cat.name}"

    if idx_good.size:
        h = healpix29(ra[idx_good], dec[idx_good])
        reg = pa.table({
            "__row": pa.array(idx_good, type=pa.int64()),
            "__ra": pa.array(ra[idx_good]),
            "__dec": pa.array(dec[idx_good]),
            "__h": pa.array(h, type=pa.int64()),
        })
        cells = dilate(np.unique(h >> shift), k)
        lo, hi = cells_to_ranges29(cells, np.full(cells.size, k))
        files = cat.files_for(lo, hi)
        if files:
            from .engine import _read_parquet

            clo, chi = coarsen_ranges(lo, hi, 64)
            pred = " OR ".join(f"_healpix_29 BETWEEN {int(a)} AND {int(b) - 1}" for a, b in zip(clo, chi))
            sel = ", ".join(f't."{c}" AS "{o}"' for c, o in zip(cat_cols, out_names))
            first = cat_cols[0]
            sql = f"""
            SELECT u.__row, {sel}, ang_sep(u.__ra, u.__dec, t."{cat.ra}", t."{cat.dec}") * 3600.0 AS "{sep_name}"
            FROM (SELECT __row, __ra, __dec,
                         UNNEST(list_distinct(__hpx_neighbours(__h, {k}))) AS __cell FROM __xm_user) u
            JOIN (SELECT *, (_healpix_29 >> {shift}) AS __cell FROM {_read_parquet(files)}
                  WHERE {pred}) t
              ON u.__cell = t.__cell
            WHERE cone(t."{cat.ra}", t."{cat.dec}", u.__ra, u.__dec, {r_deg!r})
            QUALIFY row_number() OVER (PARTITION BY u.__row ORDER BY "{sep_name}", t."{first}") = 1
            """
            found = release._with_registered("__xm_user", reg, sql)
        else:
            found = None
    else:
        found = None

    take = np.full(n, -1, dtype=np.int64)
    if found is not None and found.num_rows:
        rows = found["__row"].to_numpy()
        take[rows] = np.arange(found.num_rows)
        matched = found.drop_columns(["__row"])
    else:
        fields = [pa.field(o, cat.schema.field(c).type) for c, o in zip(cat_cols, out_names)]
        fields.append(pa.field(sep_name, pa.float64()))
        matched = pa.Table.from_pylist([], schema=pa.schema(fields))
    indices = pa.array(take, mask=take < 0, type=pa.int64())
    picked = matched.take(indices) if matched.num_rows else pa.Table.from_arrays(
        [pa.nulls(n, type=f.type) for f in matched.schema], schema=matched.schema
    )
    fields = list(user.schema)
    cols = list(user.columns)
    for c, o in zip(cat_cols, out_names):
        f = cat.schema.field(c)
        fields.append(pa.field(o, picked[o].type, metadata=f.metadata))
        cols.append(picked[o])
    fields.append(pa.field(sep_name, pa.float64(), metadata=SEPARATION_META))
    cols.append(picked[sep_name].cast(pa.float64()))
    meta = dict(user.schema.metadata or {})
    meta.pop(b"pandas", None)
    meta[b"truncated"] = b"false"
    return pa.Table.from_arrays(cols, schema=pa.schema(fields, metadata=meta))
