"""write_release + manifest: immutability, staging, verification, listing."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from minidr.errors import InputError, ReleaseError
from minidr.release import schema as S
from minidr.release.manifest import list_releases, load_manifest, verify_release
from minidr.release.writer import write_release
from test_release_data import release_tables

MANIFEST = {"software": {"minidr": "test"}, "config": {"release": {"partition_rows": 900}}, "config_hash": "abc",
            "inputs": [{"path": "raw/x.fits", "sha256": "00"}]}


def _publish(root: Path, name: str, tables: dict, **kw) -> Path:
    catalogs = {
        "Object": (tables["Object"], "coord_ra", "coord_dec"),
        "Source": (tables["Source"], "ra", "dec"),
        "ForcedSource": (tables["ForcedSource"], "coord_ra", "coord_dec"),
    }
    flat = {"Visit": tables["Visit"], "CcdVisit": tables["CcdVisit"]}
    return write_release(root / name, catalogs=catalogs, tables=flat, manifest=MANIFEST,
                         partition_rows=900, row_group_rows=500, **kw)


@pytest.fixture(scope="module")
def tables():
    return release_tables(n_obj=1500, n_src=3000, seed=5)


@pytest.fixture(scope="module")
def release(tables, tmp_path_factory):
    root = tmp_path_factory.mktemp("releases")
    return _publish(root, "DR1", tables)


def test_release_contents_and_manifest(release, tables):
    assert sorted(p.name for p in release.iterdir()) == [
        "CcdVisit.parquet", "ForcedSource", "Object", "Source", "Visit.parquet", "manifest.json"]
    doc = load_manifest(release)
    assert doc["name"] == "DR1" and doc["config_hash"] == "abc" and doc["inputs"] == MANIFEST["inputs"]
    assert doc["created"].endswith("Z")
    files = {e["path"]: e for e in doc["outputs"]["files"]}
    on_disk = {str(p.relative_to(release)) for p in release.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(files) == on_disk
    assert all(len(e["sha256"]) == 64 and e["size"] == (release / e["path"]).stat().st_size for e in files.values())
    for name in ("Object", "Source", "ForcedSource", "Visit", "CcdVisit"):
        assert doc["outputs"]["tables"][name]["rows"] == tables[name].num_rows
    # sorted keys: the manifest text is canonical
    text = (release / "manifest.json").read_text()
    assert json.dumps(json.loads(text), sort_keys=True, indent=1) + "\n" == text


def test_flat_tables_and_catalog_schemas(release, tables):
    visit = pq.read_table(release / "Visit.parquet")
    assert visit.column_names == [f.name for f in S.VISIT_SCHEMA]
    assert visit["visit"].to_pylist() == sorted(tables["Visit"]["visit"].to_pylist())
    assert pq.read_schema(release / "CcdVisit.parquet").field("seeing").metadata[b"unit"] == b"arcsec"
    for name, schema in (("Source", S.SOURCE_SCHEMA), ("ForcedSource", S.FORCED_SOURCE_SCHEMA),
                         ("Object", S.object_schema(["g", "r"]))):
        got = pq.read_schema(release / name / "dataset/_common_metadata")
        assert got.names == schema.names
        for f in got:
            assert f.metadata[b"unit"] == schema.field(f.name).metadata[b"unit"]
    con = duckdb.connect()
    n = con.execute(f"SELECT count(*) FROM read_parquet('{release}/Source/dataset/*/*/*.parquet')").fetchone()[0]
    assert n == tables["Source"].num_rows


def test_files_are_read_only_and_verify_clean(release):
    assert verify_release(release) == []
    f = next((release / "Object").rglob("Npix=*.parquet"))
    assert not os.access(f, os.W_OK) or os.geteuid() == 0
    assert (f.stat().st_mode & 0o222) == 0


def test_existing_release_refused(release, tables):
    with pytest.raises(ReleaseError, match="DR1 already exists"):
        _publish(release.parent, "DR1", tables)
    assert verify_release(release) == []


def test_failed_write_leaves_nothing(tables, tmp_path):
    broken = dict(tables)
    broken["Source"] = tables["Source"].drop_columns(["psfFlux"])  # Object is written, then Source fails
    with pytest.raises(InputError, match="psfFlux"):
        _publish(tmp_path, "DR2", broken)
    assert list(tmp_path.iterdir()) == []  # no final dir, no staging dir
    assert list_releases(tmp_path) == []


def test_verify_detects_changed_missing_and_extra_files(tables, tmp_path):
    rel = _publish(tmp_path, "DR1", tables)
    f = next((rel / "Source").rglob("Npix=*.parquet"))
    f.chmod(0o644)
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))
    (rel / "Visit.parquet").unlink()
    (rel / "Object" / "notes.txt").write_text("extra")
    problems = verify_release(rel)
    rel_f = str(f.relative_to(rel))
    assert len(problems) == 3, problems
    assert any(p.startswith(f"changed file {rel_f}") for p in problems)
    assert "missing file Visit.parquet" in problems
    assert "unexpected file Object/notes.txt" in problems


def test_list_releases_oldest_first_ignores_staging(tables, tmp_path):
    small = {k: v.slice(0, 200) for k, v in tables.items()}
    small["ForcedSource"] = small["ForcedSource"].drop_columns(["coord_ra", "coord_dec"])
    # ForcedSource positions come from Object via objectId: keep only rows whose object is present
    keep = set(small["Object"]["objectId"].to_pylist())
    fs = small["ForcedSource"]
    small["ForcedSource"] = fs.filter(pa.array([o in keep for o in fs["objectId"].to_pylist()]))
    _publish(tmp_path, "DRb", small)
    time.sleep(0.01)
    _publish(tmp_path, "DRa", small)
    (tmp_path / ".DRc.staging-999999").mkdir()
    (tmp_path / "junk").mkdir()
    assert list_releases(tmp_path) == ["DRb", "DRa"]
    fs_cols = pq.read_schema(tmp_path / "DRa" / "ForcedSource/dataset/_common_metadata").names
    assert fs_cols[-2:] == ["coord_ra", "coord_dec"]


def test_same_rows_give_identical_tables(tables, tmp_path):
    shuffled = {k: v.take(pa.array(list(reversed(range(v.num_rows))))) for k, v in tables.items()}
    a = _publish(tmp_path, "A", tables)
    b = _publish(tmp_path, "B", shuffled, jobs=1)
    fa = {e["path"]: e["sha256"] for e in load_manifest(a)["outputs"]["files"]}
    fb = {e["path"]: e["sha256"] for e in load_manifest(b)["outputs"]["files"]}
    assert fa == fb


def test_load_manifest_errors(tmp_path):
    with pytest.raises(ReleaseError, match="no manifest"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ReleaseError, match="unreadable"):
        load_manifest(tmp_path)


def test_catalog_partitions_and_properties(release):
    from minidr.release.manifest import catalog_partitions, read_properties

    parts = catalog_partitions(release / "Source")
    assert parts and all((release / "Source" / p).is_file() for _, _, p in parts)
    starts = [pix << (2 * (29 - o)) for o, pix, _ in parts]
    assert starts == sorted(starts)
    props = read_properties(release / "Source")
    assert props["hats_col_ra"] == "ra" and props["dataproduct_type"] == "source"
    assert int(props["hats_nrows"]) == load_manifest(release)["outputs"]["tables"]["Source"]["rows"]


def test_verify_detects_changed_manifest(tables, tmp_path):
    small = {k: v.slice(0, 300) for k, v in tables.items()}
    rel = _publish(tmp_path, "DR1", small)
    m = rel / "manifest.json"
    original = m.read_bytes()
    m.chmod(0o644)
    assert verify_release(rel) == []
    # a changed value that stays valid JSON
    m.write_bytes(original.replace(b'"config_hash": "abc"', b'"config_hash": "abd"'))
    assert verify_release(rel) == ["changed file manifest.json: its content does not match manifest_sha256"]
    # a changed byte of layout only
    m.write_bytes(original.replace(b'\n "config_hash"', b'\n  "config_hash"'))
    assert verify_release(rel) == ["changed file manifest.json: not in its canonical form"]
    # a byte flip that breaks the JSON
    broken = bytearray(original)
    broken[0] ^= 0xFF
    m.write_bytes(bytes(broken))
    problems = verify_release(rel)
    assert len(problems) == 1 and problems[0].startswith("changed file manifest.json: unreadable")
    m.write_bytes(original)
    assert verify_release(rel) == []
