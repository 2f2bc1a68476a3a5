"""write_hats_catalog: HATS layout, round trip, determinism, hats/lsdb compatibility."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
import pyarrow.parquet as pq
import pytest
from test_release_data import release_tables

from minidr.errors import InputError, ReleaseError
from minidr.release import schema as S
from minidr.release.writer import write_hats_catalog
from minidr.sky.healpix import healpix29

PARTITION_ROWS = 700


@pytest.fixture(scope="module")
def tables():
    return release_tables(n_obj=3000, n_src=6000, seed=3)


@pytest.fixture(scope="module")
def objdir(tables, tmp_path_factory):
    d = tmp_path_factory.mktemp("cat") / "Object"
    obj = S.conform(tables["Object"], S.object_schema(["g", "r"]))
    info = write_hats_catalog(obj, d, name="Object", ra_column="coord_ra", dec_column="coord_dec",
                              partition_rows=PARTITION_ROWS, row_group_rows=256, sort_columns=("objectId",))
    return d, info


def _tree_digest(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*")) if p.is_file()}


def test_layout_and_partitions(objdir, tables):
    d, info = objdir
    assert info.n_rows == tables["Object"].num_rows
    assert (d / "hats.properties").is_file() and (d / "partition_info.csv").is_file()
    assert (d / "dataset/_metadata").is_file() and (d / "dataset/_common_metadata").is_file()
    lines = (d / "partition_info.csv").read_text().splitlines()
    assert lines[0] == "Norder,Npix" and len(lines) == 1 + len(info.partitions)
    assert len(info.partitions) > 3  # the dense field was split
    total = 0
    for p in info.partitions:
        f = d / f"dataset/Norder={p.order}/Dir={(p.pixel // 10000) * 10000}/Npix={p.pixel}.parquet"
        pf = pq.ParquetFile(f)
        n = pf.metadata.num_rows
        assert n == p.n_rows and (n <= PARTITION_ROWS or p.order == 12)
        total += n
        t = pf.read()
        assert t.column_names[0] == "_healpix_29"
        hp = t["_healpix_29"].to_numpy()
        lo, hi = p.range29()
        assert hp.min() >= lo and hp.max() < hi and np.all(np.diff(hp) >= 0)
        for i in range(pf.metadata.num_row_groups):
            rg = pf.metadata.row_group(i)
            assert rg.num_rows <= 256
            st = rg.column(0).statistics
            assert st is not None and st.has_min_max and lo <= st.min <= st.max < hi
    assert total == info.n_rows
    props = dict(line.split("=", 1) for line in (d / "hats.properties").read_text().splitlines() if "=" in line)
    assert props["dataproduct_type"] == "object" and props["hats_col_ra"] == "coord_ra"
    assert int(props["hats_nrows"]) == info.n_rows and int(props["hats_max_rows"]) == PARTITION_ROWS
    assert "hats_creation_date" not in props


def test_round_trip_pyarrow_and_duckdb(objdir, tables):
    d, _ = objdir
    src = tables["Object"]
    hp = healpix29(src["coord_ra"].to_numpy(), src["coord_dec"].to_numpy())
    expect = src.add_column(0, "_healpix_29", pa.array(hp))
    expect = expect.take(pc.sort_indices(expect, [("_healpix_29", "ascending"), ("objectId", "ascending")]))
    # _metadata lists the files in order-29 order: the rows come back globally sorted
    got = pds.parquet_dataset(str(d / "dataset" / "_metadata")).to_table()
    assert got.column_names == expect.column_names
    for name in expect.column_names:
        assert got[name].to_pylist() == expect[name].to_pylist(), name
    con = duckdb.connect()
    glob = str(d / "dataset" / "Norder=*" / "Dir=*" / "Npix=*.parquet")
    n, s = con.execute(f"SELECT count(*), sum(objectId) FROM read_parquet('{glob}')").fetchone()
    assert n == src.num_rows and s == pc.sum(src["objectId"]).as_py()
    # reading the directory gives the same rows (file order differs)
    got = pq.ParquetDataset(d / "dataset", partitioning=None).read()
    assert got.sort_by([("_healpix_29", "ascending"), ("objectId", "ascending")]).to_pydict() == expect.to_pydict()
    meta = pq.read_metadata(d / "dataset/_metadata")
    assert meta.num_rows == src.num_rows


def test_units_and_descriptions_on_every_field(objdir):
    d, _ = objdir
    files = [d / "dataset/_common_metadata", d / "dataset/_metadata", next((d / "dataset").rglob("Npix=*.parquet"))]
    for f in files:
        schema = pq.read_schema(f)
        assert schema.names[0] == "_healpix_29" and schema.field(0).type == pa.int64()
        for field in schema:
            meta = field.metadata or {}
            assert b"unit" in meta and meta[b"description"], (f, field.name)
    schema = pq.read_schema(files[0])
    assert schema.field("coord_ra").metadata[b"unit"] == b"deg"
    assert schema.field("g_psfFluxMean").metadata[b"unit"] == b"nJy"


def test_byte_identical_for_shuffled_input_and_any_jobs(tables, tmp_path):
    obj = S.conform(tables["Object"], S.object_schema(["g", "r"]))
    rng = np.random.default_rng(9)
    digests = []
    for k, (perm, jobs) in enumerate([(np.arange(obj.num_rows), 1), (rng.permutation(obj.num_rows), 3),
                                      (rng.permutation(obj.num_rows), 2)]):
        t = obj.take(perm)
        if k == 2:  # chunked differently
            t = pa.concat_tables([t.slice(0, 1000), t.slice(1000)])
        d = tmp_path / f"c{k}"
        write_hats_catalog(t, d, name="Object", ra_column="coord_ra", dec_column="coord_dec",
                           partition_rows=PARTITION_ROWS, row_group_rows=300, jobs=jobs)
        digests.append(_tree_digest(d))
    assert digests[0] == digests[1] == digests[2]


def test_ties_broken_deterministically(tmp_path):
    # many rows at the same position, no sort columns: the order comes from the other columns
    n = 500
    rng = np.random.default_rng(1)
    t = pa.table({"ra": np.full(n, 10.0), "dec": np.full(n, 20.0), "v": rng.permutation(n).astype(np.float64),
                  "s": pa.array([f"x{i % 7}" for i in range(n)])})
    d1, d2 = tmp_path / "a", tmp_path / "b"
    write_hats_catalog(t, d1, name="T", ra_column="ra", dec_column="dec", partition_rows=100)
    write_hats_catalog(t.take(rng.permutation(n)), d2, name="T", ra_column="ra", dec_column="dec", partition_rows=100)
    assert _tree_digest(d1) == _tree_digest(d2)
    got = pq.ParquetDataset(d1 / "dataset", partitioning=None).read()
    assert got["v"].to_pylist() == sorted(got["v"].to_pylist())


def test_hats_reads_and_validates(objdir):
    import hats
    from hats.io.validation import is_valid_catalog

    d, info = objdir
    cat = hats.read_hats(d)
    assert cat.catalog_info.total_rows == info.n_rows
    assert len(cat.get_healpix_pixels()) == len(info.partitions)
    assert cat.catalog_info.ra_column == "coord_ra"
    logging.disable(logging.WARNING)
    try:
        assert is_valid_catalog(d, strict=True)
    finally:
        logging.disable(logging.NOTSET)


def _angsep_deg(ra1, dec1, ra2, dec2):
    r1, d1, r2, d2 = map(np.radians, (ra1, dec1, ra2, dec2))
    s = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(s)))


@pytest.mark.filterwarnings("ignore::Warning")
@pytest.mark.parametrize("ra0,dec0,radius_arcsec", [(151.0, 2.0, 1800.0), (0.5, 0.0, 7200.0)])
def test_lsdb_cone_matches_brute_force(objdir, tables, ra0, dec0, radius_arcsec):
    import lsdb

    d, _ = objdir
    cat = lsdb.open_catalog(d, columns=["objectId", "coord_ra", "coord_dec"])
    got = np.sort(cat.cone_search(ra0, dec0, radius_arcsec).compute()["objectId"].to_numpy())
    src = tables["Object"]
    sep = _angsep_deg(src["coord_ra"].to_numpy(), src["coord_dec"].to_numpy(), ra0, dec0)
    expect = np.sort(src["objectId"].to_numpy()[sep <= radius_arcsec / 3600.0])
    assert len(expect) > 10
    np.testing.assert_array_equal(got, expect)


@pytest.mark.filterwarnings("ignore::Warning")
def test_lsdb_opens_source_catalog(tables, tmp_path):
    import lsdb

    d = tmp_path / "Source"
    src = S.conform(tables["Source"], S.SOURCE_SCHEMA)
    write_hats_catalog(src, d, name="Source", ra_column="ra", dec_column="dec", partition_rows=2000,
                       sort_columns=("sourceId",))
    assert "dataproduct_type=source" in (d / "hats.properties").read_text()
    cat = lsdb.open_catalog(d)
    df = cat.compute()
    assert len(df) == src.num_rows
    assert set(df["sourceId"]) == set(src["sourceId"].to_pylist())


def test_errors(tables, tmp_path):
    obj = tables["Object"]
    with pytest.raises(InputError, match="coord_dex"):
        write_hats_catalog(obj, tmp_path / "x", name="Object", ra_column="coord_ra", dec_column="coord_dex",
                           partition_rows=10)
    bad = obj.set_column(obj.schema.get_field_index("coord_dec"), "coord_dec",
                         pa.array(np.full(obj.num_rows, 95.0)))
    with pytest.raises(InputError, match="out-of-range"):
        write_hats_catalog(bad, tmp_path / "y", name="Object", ra_column="coord_ra", dec_column="coord_dec",
                           partition_rows=10)
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "f").write_text("x")
    with pytest.raises(ReleaseError, match="not empty"):
        write_hats_catalog(obj, tmp_path / "z", name="Object", ra_column="coord_ra", dec_column="coord_dec",
                           partition_rows=10)


def test_existing_healpix_column_and_empty_table(tmp_path):
    t = pa.table({"ra": [10.0, 200.0], "dec": [0.0, -30.0], "_healpix_29": healpix29([10.0, 200.0], [0.0, -30.0])})
    info = write_hats_catalog(t, tmp_path / "a", name="T", ra_column="ra", dec_column="dec", partition_rows=5)
    assert pq.read_schema(tmp_path / "a/dataset/_common_metadata").names == ["_healpix_29", "ra", "dec"]
    assert info.n_rows == 2 and len(info.partitions) == 2
    empty = t.slice(0, 0)
    info = write_hats_catalog(empty, tmp_path / "b", name="T", ra_column="ra", dec_column="dec", partition_rows=5)
    assert info.n_rows == 0 and info.partitions == []
    assert pq.read_schema(tmp_path / "b/dataset/_common_metadata").names == ["_healpix_29", "ra", "dec"]


from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.tuples(st.floats(0, 360, exclude_max=True), st.floats(-90, 90)), min_size=1, max_size=80),
    st.integers(1, 20),
)
def test_any_positions_round_trip(tmp_path_factory, points, max_rows):
    d = tmp_path_factory.mktemp("h") / "T"
    ra = np.array([p[0] for p in points])
    dec = np.array([p[1] for p in points])
    t = pa.table({"ra": ra, "dec": dec, "i": np.arange(len(points))})
    info = write_hats_catalog(t, d, name="T", ra_column="ra", dec_column="dec", partition_rows=max_rows,
                              row_group_rows=7)
    seen = []
    for p in info.partitions:
        part = pq.read_table(d / f"dataset/Norder={p.order}/Dir={p.dir}/Npix={p.pixel}.parquet")
        lo, hi = p.range29()
        hp = part["_healpix_29"].to_numpy()
        assert np.all((hp >= lo) & (hp < hi))
        np.testing.assert_array_equal(hp, healpix29(part["ra"].to_numpy(), part["dec"].to_numpy()))
        seen += part["i"].to_pylist()
    assert sorted(seen) == list(range(len(points)))


def test_bad_given_healpix_column(tmp_path):
    t = pa.table({"ra": [10.0], "dec": [0.0], "_healpix_29": pa.array([-1], type=pa.int64())})
    with pytest.raises(InputError, match="_healpix_29"):
        write_hats_catalog(t, tmp_path / "a", name="T", ra_column="ra", dec_column="dec", partition_rows=5)


def test_ties_on_position_and_id_columns(tmp_path):
    # forced-photometry-like: many rows per position; ids unique except a few duplicated
    # rows that differ only in later columns (including NaN and null values)
    rng = np.random.default_rng(4)
    n = 600
    pos = rng.integers(0, 20, n)
    ids = np.arange(n) // 2  # pairs share an id
    v = rng.normal(size=n)
    v[::7] = np.nan
    w = pa.array([None if i % 5 == 0 else f"b{i % 3}" for i in range(n)])
    t = pa.table({"ra": 10.0 + pos * 1e-3, "dec": np.full(n, -5.0), "id": ids, "v": v, "w": w})
    digests = []
    for k in range(3):
        perm = np.arange(n) if k == 0 else rng.permutation(n)
        d = tmp_path / f"t{k}"
        write_hats_catalog(t.take(perm), d, name="T", ra_column="ra", dec_column="dec", partition_rows=50,
                           sort_columns=("id",))
        digests.append(_tree_digest(d))
    assert digests[0] == digests[1] == digests[2]
    got = pds.parquet_dataset(str(tmp_path / "t0" / "dataset" / "_metadata")).to_table()
    hp, idc = got["_healpix_29"].to_numpy(), got["id"].to_numpy()
    key = hp.astype(object) * 10**6 + idc
    assert list(key) == sorted(key)


def test_position_columns_must_be_numeric(tmp_path):
    t = pa.table({"ra": ["10:00:00"], "dec": [1.0]})
    with pytest.raises(InputError, match="numeric"):
        write_hats_catalog(t, tmp_path / "a", name="T", ra_column="ra", dec_column="dec", partition_rows=5)
    t = pa.table({"ra": pa.array([10.5], pa.float32()), "dec": pa.array([1], pa.int16())})
    info = write_hats_catalog(t, tmp_path / "b", name="T", ra_column="ra", dec_column="dec", partition_rows=5)
    assert info.n_rows == 1
