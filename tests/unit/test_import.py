"""Bulk catalog import: formats, schemas, bad rows, streaming = in-memory bytes, releases."""

from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from minidr.errors import InputError, ReleaseError, RepoError
from minidr.query import open_release
from minidr.release.ddl import parse_create_table
from minidr.release.importer import import_batches, import_table, plan_from_counts
from minidr.release.manifest import load_manifest, verify_release
from minidr.release.partition import plan_partitions
from minidr.release.writer import write_hats_catalog, write_release
from minidr.repository import Repo
from minidr.sky.healpix import healpix29

DDL = """
DROP TABLE IF EXISTS `Obj`;
CREATE TABLE `Obj` (
  `objectId` bigint(20) NOT NULL COMMENT 'unique id of the object',
  `ra` double NOT NULL COMMENT 'right ascension [deg]',
  `decl` double NOT NULL COMMENT 'declination [deg]',
  `gFlux` double DEFAULT NULL COMMENT 'g flux [nJy]',
  `flags` int(11) DEFAULT NULL,
  `name` varchar(16) DEFAULT NULL,
  PRIMARY KEY (`objectId`),
  KEY `idx_ra` (`ra`)
) ENGINE=MyISAM DEFAULT CHARSET=latin1;
"""


def _catalog(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    ra = np.concatenate([rng.uniform(0, 360, n // 2), rng.normal(30.0, 0.3, n - n // 2) % 360])
    dec = np.concatenate([np.degrees(np.arcsin(rng.uniform(-1, 1, n // 2))), rng.normal(-5.0, 0.3, n - n // 2)])
    return pa.table({
        "objectId": rng.permutation(n).astype(np.int64) + 1,
        "ra": ra, "decl": dec,
        "gFlux": rng.lognormal(6, 1, n),
        "flags": rng.integers(0, 4, n).astype(np.int32),
        "name": [f"s{i % 13}" for i in range(n)],
    })


def _csv_text(t: pa.Table, header=True, sep=",", null="\\N") -> str:
    cols = [c.to_pylist() for c in t.columns]
    out = [sep.join(t.column_names)] if header else []
    for row in zip(*cols):
        out.append(sep.join(null if v is None else (repr(v) if isinstance(v, float) else str(v)) for v in row))
    return "\n".join(out) + "\n"


@pytest.fixture
def repo(tmp_path):
    return Repo.create(tmp_path / "repo", partition_rows=400).path


def test_ddl_mysql_create_table():
    s = parse_create_table(DDL, "Obj")
    assert s.primary_key == ["objectId"]
    assert s.schema.field("objectId").type == pa.int64() and not s.schema.field("objectId").nullable
    assert s.schema.field("flags").type == pa.int32() and s.schema.field("flags").nullable
    assert s.schema.field("name").type == pa.string()
    ra = s.schema.field("ra").metadata
    assert ra[b"unit"] == b"deg" and ra[b"description"] == b"right ascension"
    with pytest.raises(InputError, match="CREATE TABLE"):
        parse_create_table("SELECT 1")


def test_plan_from_counts_equals_plan_partitions():
    rng = np.random.default_rng(3)
    t = _catalog(20000, seed=4)
    hp = np.sort(healpix29(t["ra"].to_numpy(), t["decl"].to_numpy()))
    for max_rows in (1, 50, 700, 5000, 10**6):
        pix, cnt = np.unique(hp >> 34, return_counts=True)
        assert plan_from_counts(pix, cnt, max_rows) == plan_partitions(hp, max_rows, 12)
    assert plan_from_counts(np.zeros(0, np.int64), np.zeros(0, np.int64), 5) == []
    del rng


def test_csv_gzip_with_ddl_is_a_hats_catalog(repo, tmp_path):
    t = _catalog()
    f = tmp_path / "obj.csv.gz"
    f.write_bytes(gzip.compress(_csv_text(t).encode()))
    (tmp_path / "obj.sql").write_text(DDL)
    rep = import_table(repo, "EXT", "Obj", [f], schema=tmp_path / "obj.sql")
    assert (rep.rows, rep.kind, rep.ra, rep.dec, rep.new_release) == (3000, "hats", "ra", "decl", True)
    rel = repo / "releases" / "EXT"
    assert verify_release(rel) == []
    assert rep.partitions > 1 and all(os.stat(rel / p).st_mode & 0o222 == 0 for p in rep.files)
    man = load_manifest(rel)
    assert man["outputs"]["tables"]["Obj"]["rows"] == 3000
    assert man["imports"][0]["inputs"][0]["sha256"] and man["imports"][0]["id"] == "objectId"
    dr = open_release(repo, "EXT")
    sch = dr.schema("Obj")
    assert sch.names[0] == "_healpix_29" and sch.field("gFlux").metadata[b"unit"] == b"nJy"
    assert sch.field("objectId").metadata[b"description"] == b"unique id of the object"
    got = dr.sql("SELECT objectId, ra, decl, gFlux, flags, name FROM Obj ORDER BY objectId")
    want = t.sort_by("objectId")
    assert got["objectId"].to_pylist() == want["objectId"].to_pylist()
    assert np.array_equal(got["ra"].to_numpy(), want["ra"].to_numpy())
    assert got["name"].to_pylist() == want["name"].to_pylist()
    # rows are sorted by _healpix_29 inside every partition, partitions hold <= 400 rows
    for p in (rel / "Obj" / "dataset").rglob("Npix=*.parquet"):
        hp = pq.read_table(p, columns=["_healpix_29"])["_healpix_29"].to_numpy()
        assert np.all(np.diff(hp) >= 0)


def test_streaming_spill_gives_the_bytes_of_the_in_memory_writer(repo, tmp_path):
    t = _catalog(6000, seed=7)
    pq.write_table(t, tmp_path / "obj.parquet", row_group_size=500)
    seen = []
    rep = import_table(repo, "S", "Obj", [tmp_path / "obj.parquet"], id_column="objectId",
                       memory_budget=60_000, partition_rows=300, progress=lambda s, f: seen.append((s, f)))
    assert rep.spilled_bytes > 0 and rep.partitions > 10
    assert {s for s, _ in seen} == {"read", "group", "write", "publish"} and seen[-1] == ("publish", 1.0)
    assert all(0.0 <= f <= 1.0 for _, f in seen)
    ref = tmp_path / "ref"
    info = write_hats_catalog(t, ref, name="Obj", ra_column="ra", dec_column="decl", partition_rows=300,
                              sort_columns=("objectId",))
    got = repo / "releases" / "S" / "Obj"
    assert sorted(info.files) == sorted(str(p.relative_to(got)) for p in got.rglob("*") if p.is_file())
    for rel in info.files:
        assert (got / rel).read_bytes() == (ref / rel).read_bytes(), rel
    # and the input order does not matter
    pq.write_table(t.take(np.random.default_rng(1).permutation(6000)), tmp_path / "shuffled.parquet")
    import_table(repo, "S2", "Obj", [tmp_path / "shuffled.parquet"], id_column="objectId",
                 memory_budget=60_000, partition_rows=300)
    for rel in info.files:
        assert (repo / "releases" / "S2" / "Obj" / rel).read_bytes() == (ref / rel).read_bytes()


def test_bad_row_names_file_and_line_and_publishes_nothing(repo, tmp_path):
    (tmp_path / "obj.sql").write_text(DDL)
    f = tmp_path / "bad.csv"
    good = "objectId,ra,decl,gFlux,flags,name\n1,10.0,1.0,5,0,a\n2,10.1,oops,5,0,b\n3,10.2,1.2,\\N,1,c\n"
    f.write_text(good)
    with pytest.raises(InputError, match=r"bad.csv: line 3: column decl: cannot read 'oops'"):
        import_table(repo, "B", "Obj", [f], schema=tmp_path / "obj.sql")
    f.write_text(good + "4,10.3,95.0,1,1,d\n5,10.4\n")
    with pytest.raises(InputError, match=r"bad.csv: line 6: 2 fields, expected 6"):
        import_table(repo, "B", "Obj", [f], schema=tmp_path / "obj.sql")
    assert [p.name for p in (repo / "releases").iterdir()] == []
    rep = import_table(repo, "B", "Obj", [f], schema=tmp_path / "obj.sql", skip_bad=True)
    assert (rep.rows, rep.skipped) == (2, 3)
    assert any("line 5: bad position" in b for b in rep.bad_rows)
    assert any("line 6" in b and "fields" in b for b in rep.bad_rows)
    dr = open_release(repo, "B")
    assert dr.sql("SELECT objectId, gFlux FROM Obj ORDER BY objectId").to_pylist() == [
        {"objectId": 1, "gFlux": 5.0}, {"objectId": 3, "gFlux": None}]


def test_headerless_tsv_custom_null_and_not_null(repo, tmp_path):
    (tmp_path / "obj.sql").write_text(DDL)
    f = tmp_path / "obj.tsv"
    f.write_text("1\t10.0\t1.0\t-\t0\ta\n2\t10.5\t1.5\t7.5\t-\tb\n")
    rep = import_table(repo, "T", "Obj", [f], schema=tmp_path / "obj.sql", null="-")
    assert rep.rows == 2
    got = open_release(repo, "T").sql("SELECT gFlux, flags FROM Obj ORDER BY objectId").to_pylist()
    assert got == [{"gFlux": None, "flags": 0}, {"gFlux": 7.5, "flags": None}]
    f.write_text("-\t10.0\t1.0\t1\t0\ta\n")
    with pytest.raises(InputError, match="line 1: column objectId is NOT NULL"):
        import_table(repo, "T2", "Obj", [f], schema=tmp_path / "obj.sql", null="-")


def test_fits_table_units_and_positions_guessed(repo, tmp_path):
    fitsio = pytest.importorskip("fitsio")
    t = _catalog(500)
    data = np.zeros(500, dtype=[("ID", ">i8"), ("RAJ2000", ">f8"), ("DEJ2000", ">f8"), ("MAG", ">f4")])
    data["ID"] = t["objectId"].to_numpy()
    data["RAJ2000"], data["DEJ2000"] = t["ra"].to_numpy(), t["decl"].to_numpy()
    data["MAG"] = 20.0
    with fitsio.FITS(str(tmp_path / "cat.fits"), "rw", clobber=True) as fh:
        fh.write(data, units=["", "deg", "deg", "mag"])
    rep = import_table(repo, "F", "Ext", [tmp_path / "cat.fits"], id_column="ID")
    assert (rep.ra, rep.dec, rep.rows) == ("RAJ2000", "DEJ2000", 500)
    dr = open_release(repo, "F")
    assert dr.schema("Ext").field("MAG").metadata[b"unit"] == b"mag"
    assert dr.sql("SELECT count(*) AS n FROM Ext WHERE cone(RAJ2000, DEJ2000, 30, -5, 1)")["n"][0].as_py() == int(
        np.sum(np.degrees(np.arccos(np.clip(
            np.sin(np.radians(-5)) * np.sin(np.radians(data["DEJ2000"]))
            + np.cos(np.radians(-5)) * np.cos(np.radians(data["DEJ2000"])) * np.cos(np.radians(data["RAJ2000"] - 30)),
            -1, 1))) <= 1))


def test_table_without_positions_is_flat(repo, tmp_path):
    f = tmp_path / "filters.csv"
    f.write_text("band,lambdaEff\nr,620.0\ng,480.0\nu,360.0\n")
    stale = repo / "releases" / ".M.import-999999999"  # left by a process that died
    (stale / "Filter").mkdir(parents=True)
    rep = import_table(repo, "M", "Filter", [f])
    assert not stale.exists()
    assert rep.kind == "parquet" and rep.files == ["Filter.parquet"]
    assert open_release(repo, "M").sql("SELECT band FROM Filter ORDER BY lambdaEff")["band"].to_pylist() == ["u", "g", "r"]


def test_add_to_existing_release_keeps_old_bytes_and_verifies(repo, tmp_path):
    t = _catalog(1000)
    rel = write_release(repo / "releases" / "DR1", catalogs={"Obj": (t, "ra", "decl")},
                        tables={"Visit2": pa.table({"visit": [1, 2]})}, manifest={"software": {"name": "minidr"}},
                        partition_rows=400)
    before = {p: (p.stat().st_ino, p.read_bytes()) for p in rel.rglob("*.parquet")}
    old_sha = load_manifest(rel)["manifest_sha256"]
    dr_old = open_release(repo, "DR1")
    src = pa.table({"sourceId": np.arange(3000), "objectId": np.repeat(t["objectId"].to_numpy(), 3),
                    "psfFlux": np.arange(3000, dtype=float)})
    pq.write_table(src, tmp_path / "src.parquet")
    rep = import_table(repo, "DR1", "Src", [tmp_path / "src.parquet"], partition_by="Obj:objectId", id_column="sourceId")
    assert not rep.new_release and rep.ra == "ra" and rep.rows == 3000
    assert verify_release(rel) == []
    man = load_manifest(rel)
    assert man["previous_manifest_sha256"] == old_sha and set(man["outputs"]["tables"]) == {"Obj", "Visit2", "Src"}
    for p, (ino, data) in before.items():
        assert p.stat().st_ino == ino and p.read_bytes() == data
    assert dr_old.sql("SELECT count(*) AS n FROM Obj")["n"][0].as_py() == 1000  # old readers keep working
    dr = open_release(repo, "DR1")
    rows = dr.sql("SELECT count(*) AS n FROM Src s JOIN Obj o USING (objectId) WHERE s.ra = o.ra AND s.decl = o.decl")
    assert rows["n"][0].as_py() == 3000
    assert [p.name for p in (repo / "releases").iterdir() if p.name.startswith(".")] == []
    with pytest.raises(ReleaseError, match="already has a table Src"):
        import_table(repo, "DR1", "Src", [tmp_path / "src.parquet"], partition_by="Obj:objectId")
    bad = pa.table({"sourceId": [1], "objectId": [10**9], "psfFlux": [1.0]})
    pq.write_table(bad, tmp_path / "orphan.parquet")
    with pytest.raises(InputError, match=r"orphan.parquet: row 1: objectId 1000000000 is not in Obj"):
        import_table(repo, "DR1", "Orphan", [tmp_path / "orphan.parquet"], partition_by="Obj:objectId")
    assert verify_release(rel) == []


def test_not_a_repository(tmp_path):
    (tmp_path / "x.csv").write_text("a\n1\n")
    with pytest.raises(RepoError, match="not a minidr repository"):
        import_table(tmp_path, "X", "T", [tmp_path / "x.csv"])


def test_cli_import_and_one_line_error(repo, tmp_path, capsys):
    from minidr.cli import main

    (tmp_path / "obj.sql").write_text(DDL)
    f = tmp_path / "obj.csv"
    f.write_text(_csv_text(_catalog(200)))
    main(["import", str(repo), "C", "Obj", str(f), "--schema", str(tmp_path / "obj.sql"), "-q"])
    assert json.loads((repo / "releases" / "C" / "manifest.json").read_text())["outputs"]["tables"]["Obj"]["rows"] == 200
    with pytest.raises(SystemExit) as exc:
        main(["import", str(repo), "C", "Obj", str(f)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: release C already has a table Obj")


def test_csv_header_in_any_order_and_unknown_header_column(repo, tmp_path):
    (tmp_path / "obj.sql").write_text(DDL)
    f = tmp_path / "obj.csv"
    f.write_text("NAME,decl,RA,objectId\nx,1.5,20.0,7\n")
    import_table(repo, "H", "Obj", [f], schema=tmp_path / "obj.sql")
    got = open_release(repo, "H").sql("SELECT objectId, ra, decl, name, gFlux FROM Obj").to_pylist()
    assert got == [{"objectId": 7, "ra": 20.0, "decl": 1.5, "name": "x", "gFlux": None}]
    f.write_text("objectId,ra,decl,colour\n7,20.0,1.5,red\n")
    with pytest.raises(InputError, match="header names column.s. colour"):
        import_table(repo, "H2", "Obj", [f], schema=tmp_path / "obj.sql")


def test_unreadable_inputs_are_one_line_errors(repo, tmp_path):
    (tmp_path / "t.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match="t.parquet: not a readable Parquet file"):
        import_table(repo, "U", "T", [tmp_path / "t.parquet"])
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(b"a,b\n1,2\n3,4\n")[:15])
    with pytest.raises(InputError, match="t.csv.gz: cannot read csv"):
        import_table(repo, "U", "T", [tmp_path / "t.csv.gz"])
    assert list((repo / "releases").iterdir()) == []


def test_input_healpix_column_is_recomputed(repo, tmp_path):
    f = tmp_path / "h.csv"
    f.write_text("_healpix_29,id,ra,dec\n5,1,10.0,20.0\n")
    import_table(repo, "HP", "Cat", [f])
    got = open_release(repo, "HP").sql("SELECT * FROM Cat").to_pylist()
    assert got == [{"_healpix_29": int(healpix29([10.0], [20.0])[0]), "id": 1, "ra": 10.0, "dec": 20.0}]


def test_duplicate_id_is_one_line_error_naming_value_file_and_lines(repo, tmp_path):
    f = tmp_path / "dup.csv"
    f.write_text("objectId,ra,dec\n1,10.0,20.0\n2,11.0,21.0\n3,12.0,22.0\n2,13.0,23.0\n")
    for skip_bad in (False, True):  # which of the two rows is bad cannot be told: always an error
        with pytest.raises(InputError) as e:
            import_table(repo, "D", "Cat", [f], id_column="objectId", skip_bad=skip_bad)
        msg = str(e.value)
        assert "\n" not in msg and str(f) in msg and "objectId" in msg and "value 2 " in msg
        assert "line 3 and line 5" in msg
        assert not (repo / "releases" / "D").exists()
    # across two files: both are named; string ids too
    ok, g = tmp_path / "ok.csv", tmp_path / "more.csv"
    ok.write_text("objectId,ra,dec\n1,10.0,20.0\n2,11.0,21.0\n3,12.0,22.0\n")
    g.write_text("objectId,ra,dec\n7,1.0,2.0\n3,1.5,2.5\n")
    with pytest.raises(InputError, match=r"ok\.csv: .*value 3 is not unique \(line 4 and .*more\.csv: line 3\)"):
        import_table(repo, "D", "Cat", [ok, g], id_column="objectId")
    s = tmp_path / "names.csv"
    s.write_text("name,ra,dec\nab,1.0,2.0\ncd,1.5,2.5\nab,3.0,4.0\n")
    with pytest.raises(InputError, match=r"value 'ab' is not unique \(line 2 and line 4\)"):
        import_table(repo, "D", "Cat", [s], id_column="name")
    # without --id, repeated values are fine
    assert import_table(repo, "D", "Cat", [f]).rows == 4


def test_import_batches_streams_a_generator_and_equals_the_file_import(repo, tmp_path):
    t = _catalog(5000, seed=3)
    pq.write_table(t, tmp_path / "obj.parquet")
    import_table(repo, "F", "Obj", [tmp_path / "obj.parquet"], id_column="objectId", partition_rows=300,
                 row_group_rows=100)

    def gen():  # chunks of a generator, one of them a Table
        for i in range(0, 5000, 700):
            chunk = t.slice(i, 700)
            yield chunk if i == 700 else chunk.to_batches()[0]

    seen = []
    rep = import_batches(repo, "G", "Obj", gen(), id_column="objectId", partition_rows=300, row_group_rows=100,
                         memory_budget=50_000, total_rows=5000, progress=lambda s, f: seen.append((s, f)))
    assert rep.rows == 5000 and rep.spilled_bytes > 0 and rep.partitions > 10
    assert any(s == "read" and 0 < f < 1 for s, f in seen)
    a, b = repo / "releases" / "F" / "Obj", repo / "releases" / "G" / "Obj"
    files = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    md = pq.ParquetFile(next(b.rglob("Npix=*.parquet"))).metadata
    assert md.row_group(0).num_rows <= 100
    man = load_manifest(repo / "releases" / "G")
    assert man["imports"][0]["inputs"] == [] and man["imports"][0]["formats"] == ["batches"]
    bad = pa.table({"objectId": [1, 2], "ra": [1.0, 2.0], "decl": [3.0, 95.0]})
    with pytest.raises(InputError, match=r"<batches>: row 2: bad position"):
        import_batches(repo, "G2", "Obj", iter([bad]))
    with pytest.raises(InputError, match="not both"):
        import_table(repo, "G2", "Obj", [tmp_path / "obj.parquet"], batches=[bad])


@pytest.mark.parametrize("id_column", ["objectId", None])
def test_rows_sharing_a_position_are_ordered_as_the_writer_orders_them(repo, tmp_path, id_column):
    """Rows tied on ``_healpix_29`` (50 distinct positions) are ordered by the id, then by every
    other column (nulls and NaNs included), per partition exactly as the in-memory writer
    orders the whole table: same bytes with and without spilling, and from input already in
    the output order (the rows then go out without a gather)."""
    rng = np.random.default_rng(11)
    n = 4000
    pos = rng.integers(0, 50, n)
    ra, dec = rng.uniform(10, 12, 50)[pos], rng.uniform(-1, 1, 50)[pos]
    flux = rng.integers(0, 3, n).astype(np.float64)
    flux[rng.random(n) < 0.1] = np.nan
    flags = pa.array(rng.integers(0, 3, n).astype(np.int32), mask=rng.random(n) < 0.1)
    t = pa.table({"objectId": rng.permutation(n).astype(np.int64), "ra": ra, "decl": dec, "gFlux": flux,
                  "flags": flags, "name": [f"s{i % 3}" for i in range(n)]})
    ref = tmp_path / "ref"
    info = write_hats_catalog(t, ref, name="Obj", ra_column="ra", dec_column="decl", partition_rows=300,
                              sort_columns=(id_column,) if id_column else ())
    ref_rows = pa.concat_tables(pq.read_table(ref / rel) for rel in info.files if "Npix=" in rel)
    pq.write_table(t, tmp_path / "obj.parquet", row_group_size=700)
    pq.write_table(ref_rows.drop_columns(["_healpix_29"]), tmp_path / "sorted.parquet", row_group_size=700)
    for k, (src, budget) in enumerate([("obj", 1 << 30), ("obj", 40_000), ("sorted", 1 << 30)]):
        rep = import_table(repo, f"T{k}", "Obj", [tmp_path / f"{src}.parquet"], id_column=id_column,
                           memory_budget=budget, partition_rows=300)
        assert (rep.spilled_bytes > 0) == (budget < 1 << 20)
        got = repo / "releases" / f"T{k}" / "Obj"
        for rel in info.files:
            assert (got / rel).read_bytes() == (ref / rel).read_bytes(), (src, budget, rel)
