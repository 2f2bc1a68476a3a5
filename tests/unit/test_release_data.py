"""Small synthetic release tables for the release tests (no tests in this module)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from minidr.release import schema as S


def _column(field: pa.Field, n: int, rng: np.random.Generator):
    t = field.type
    if pa.types.is_string(t):
        return pa.array(rng.choice(["g", "r", "i"], n).tolist(), type=t)
    if pa.types.is_integer(t):
        return pa.array(rng.integers(0, 1000, n), type=t)
    return pa.array(rng.normal(0, 100, n), type=t)


def random_table(schema: pa.Schema, n: int, seed: int = 0, *, ra=None, dec=None, ids=None) -> pa.Table:
    """Rows of ``schema`` (without _healpix_29) with random values; given positions and ids."""
    rng = np.random.default_rng(seed)
    cols = {}
    for f in schema:
        if f.name == S.HEALPIX_COLUMN:
            continue
        cols[f.name] = _column(f, n, rng)
    table = pa.table(cols)
    fields = [f for f in schema if f.name != S.HEALPIX_COLUMN]
    return pa.Table.from_arrays(table.columns, schema=pa.schema(fields))


def sky_positions(n: int, seed: int = 0):
    """Positions in degrees: a dense 2x2 deg field, a sparse band across RA=0, a few near the pole."""
    rng = np.random.default_rng(seed)
    n1 = int(n * 0.8)
    n2 = int(n * 0.15)
    n3 = n - n1 - n2
    ra = np.concatenate([rng.uniform(150, 152, n1), rng.uniform(-3, 3, n2) % 360.0, rng.uniform(0, 360, n3)])
    dec = np.concatenate([rng.uniform(1, 3, n1), rng.uniform(-2, 2, n2), rng.uniform(88, 90, n3)])
    return ra, dec


def with_columns(table: pa.Table, **arrays) -> pa.Table:
    for name, values in arrays.items():
        i = table.schema.get_field_index(name)
        f = table.schema.field(i)
        table = table.set_column(i, f, pa.array(values, type=f.type))
    return table


def release_tables(n_obj: int = 3000, n_src: int = 9000, seed: int = 0, bands=("g", "r")):
    """Object, Source, ForcedSource, Visit and CcdVisit tables following the release schemas."""
    rng = np.random.default_rng(seed)
    ora, odec = sky_positions(n_obj, seed)
    oid = np.arange(n_obj, dtype=np.int64) * 7 + 1000
    obj = with_columns(random_table(S.object_schema(list(bands)), n_obj, seed), objectId=oid, coord_ra=ora, coord_dec=odec)
    pick = rng.integers(0, n_obj, n_src)
    src = random_table(S.SOURCE_SCHEMA, n_src, seed + 1)
    src = with_columns(
        src, sourceId=np.arange(n_src, dtype=np.int64) + 5, objectId=oid[pick],
        ra=ora[pick] + rng.normal(0, 1e-5, n_src), dec=odec[pick] + rng.normal(0, 1e-5, n_src),
    )
    src = with_columns(src, ra=np.asarray(src["ra"]) % 360.0, dec=np.clip(np.asarray(src["dec"]), -90, 90))
    n_fs = n_src
    fs = random_table(S.FORCED_SOURCE_SCHEMA, n_fs, seed + 2)
    fpick = rng.integers(0, n_obj, n_fs)
    fs = with_columns(fs, forcedSourceId=np.arange(n_fs, dtype=np.int64), objectId=oid[fpick],
                      coord_ra=ora[fpick], coord_dec=odec[fpick])
    visit = random_table(S.VISIT_SCHEMA, 6, seed + 3)
    visit = with_columns(visit, visit=np.arange(6) + 100)
    ccd = random_table(S.CCD_VISIT_SCHEMA, 24, seed + 4)
    ccd = with_columns(ccd, ccdVisitId=np.arange(24) + 100000)
    return {"Object": obj, "Source": src, "ForcedSource": fs, "Visit": visit, "CcdVisit": ccd}
