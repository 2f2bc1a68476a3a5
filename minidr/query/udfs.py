"""Spatial functions registered in a DuckDB connection.

Most functions are SQL macros in ``sql/functions.sql`` (DuckDB vectorises them itself).
What a macro cannot express is a vectorised Python UDF over Arrow arrays, calling the
numba kernels of :mod:`minidr.sky.kernels`:

* ``polygon(ra, dec, [ra1, dec1, ...]) -> BOOLEAN`` spherical polygon, concave allowed;
* ``__hpx_cell(hpx29, order) -> BIGINT`` the cell at ``order`` of an order-29 index;
* ``__hpx_neighbours(hpx29, order) -> BIGINT[]`` that cell and its (up to 8) neighbours,
  used by the neighbour-join rewrite.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from cdshealpix import nested

from ..errors import QueryError
from ..sky import kernels as K
from ..sky.healpix import ORDER_MAX

# shipped in the package (minidr/sql/); sql/functions.sql of the source tree links to it
FUNCTIONS_SQL = Path(__file__).resolve().parents[1] / "sql" / "functions.sql"


def _f64(arr) -> np.ndarray:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = pc.cast(arr, pa.float64())
    return np.ascontiguousarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)


def _polygon(ra, dec, verts):
    if isinstance(verts, pa.ChunkedArray):
        verts = verts.combine_chunks()
    n = len(ra)
    valid = pc.and_(pc.and_(pc.is_valid(ra), pc.is_valid(dec)), pc.is_valid(verts))
    offsets = np.asarray(verts.offsets, dtype=np.int64)
    base = offsets[0]
    values = _f64(verts.values)
    offsets = offsets - base if base else offsets
    r = _f64(pc.fill_null(ra, 0.0))
    d = _f64(pc.fill_null(dec, 0.0))
    out, bad = K.polygon_mask_rows(r, d, values, offsets)
    v = np.asarray(valid.to_numpy(zero_copy_only=False), dtype=bool)
    if np.any(bad & v):
        raise QueryError(
            "polygon(): vertex list must be [ra1, dec1, ra2, dec2, ...] with >= 3 vertices within a hemisphere"
        )
    return pa.array(out, mask=~v, type=pa.bool_())[:n]


def _hpx_cell(h29, order):
    h = np.asarray(pc.fill_null(h29, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    k = int(order[0].as_py()) if len(order) else ORDER_MAX
    return pa.array(h >> (2 * (ORDER_MAX - k)), type=pa.int64())


def _hpx_neighbours(h29, order):
    h = np.asarray(pc.fill_null(h29, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    k = int(order[0].as_py()) if len(order) else ORDER_MAX
    cells = h >> (2 * (ORDER_MAX - k))
    nb = np.asarray(nested.neighbours(cells.astype(np.uint64), k, num_threads=1), dtype=np.int64)  # (n, 9), -1 missing
    nb[:, 4] = cells if nb.shape[1] == 9 else nb[:, 4]
    flat = nb.ravel()
    keep = flat >= 0
    counts = keep.reshape(nb.shape).sum(axis=1)
    offsets = np.zeros(len(h) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat[keep], type=pa.int64()))


def register(con: duckdb.DuckDBPyConnection) -> None:
    """Register the UDFs and load the macros of ``sql/functions.sql`` into ``con``."""
    T = duckdb.sqltype
    con.create_function(
        "polygon", _polygon, [T("DOUBLE"), T("DOUBLE"), T("DOUBLE[]")], T("BOOLEAN"),
        type="arrow", null_handling="special", side_effects=False,
    )
    con.create_function(
        "__hpx_cell", _hpx_cell, [T("BIGINT"), T("INTEGER")], T("BIGINT"), type="arrow", side_effects=False
    )
    con.create_function(
        "__hpx_neighbours", _hpx_neighbours, [T("BIGINT"), T("INTEGER")], T("BIGINT[]"),
        type="arrow", side_effects=False,
    )
    try:
        text = FUNCTIONS_SQL.read_text()
    except OSError:
        raise QueryError(f"{FUNCTIONS_SQL}: the spatial SQL functions are missing from this installation") from None
    con.execute(text)
