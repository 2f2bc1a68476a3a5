"""minidr.repo.registry and minidr.repo.lock on real DuckDB files and real second processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from minidr.errors import LockError, ReleaseError, RepoError
from minidr.raw import read_header
from minidr.repo import layout
from minidr.repo.lock import lock_holder, repo_lock
from minidr.repo.registry import Registry, ddl
from minidr.repository import Repo
try:
    from test_reader import make_raw  # tests/unit on sys.path (pytest's default rootdir import)
except ImportError:  # pragma: no cover - if tests/unit becomes a package
    from .test_reader import make_raw

ROOT = Path(__file__).resolve().parents[2]


def test_ddl_is_packaged_and_linked_from_sql_dir():
    assert "CREATE TABLE IF NOT EXISTS raw" in ddl()
    assert (ROOT / "sql" / "registry.sql").read_text() == ddl()


def test_not_a_repository(tmp_path):
    with pytest.raises(RepoError, match="not a minidr repository"):
        Registry(tmp_path)
    with pytest.raises(RepoError, match=str(tmp_path / "nope")):
        Repo(tmp_path / "nope")
    with pytest.raises(RepoError, match="not a minidr repository"):
        Repo(tmp_path)


def test_raws_round_trip_sorted_and_filtered(tmp_path):
    reg = Registry.create(tmp_path)
    infos = []
    for visit, det, band, kind in ((7, 1, "r", "object"), (3, 0, "g", "object"), (7, 0, "r", "object"),
                                   (1, 0, None, "bias"), (2, 1, "g", "flat")):
        p = make_raw(tmp_path / "raw" / f"{visit}_{det}.fits", visit=visit, detector=det, band=band, imagetyp=kind)
        infos.append(read_header(p))
    reg.add_raws([(info, f"sha{i}", 100 + i) for i, info in enumerate(infos)])
    got = reg.raws()
    assert [(r.visit, r.detector) for r in got] == [(1, 0), (2, 1), (3, 0), (7, 0), (7, 1)]
    assert {(r.visit, r.detector): r for r in got} == {(r.visit, r.detector): r for r in infos}  # exact RawInfo
    assert [(r.visit, r.detector) for r in reg.raws(imagetyp="science")] == [(3, 0), (7, 0), (7, 1)]
    assert [(r.visit, r.detector) for r in reg.raws(band="r", detector=0)] == [(7, 0)]
    assert reg.raw(7, 1) == infos[0] and reg.raw(99, 0) is None
    paths = reg.raw_paths()
    assert paths[0]["imagetyp"] == "bias" and {"path", "sha256", "size"} <= set(paths[0])
    with pytest.raises(RepoError):  # a conflicting (visit, detector) rolls the whole batch back
        reg.add_raws([(infos[1], "other", 1), (infos[0], "other2", 1)])
    assert len(reg.raws()) == 5


def test_calibs_frames_releases_refcat(tmp_path):
    reg = Registry.create(tmp_path)
    assert reg.calibs() == [] and reg.frames() == [] and reg.releases() == [] and reg.refcat() is None
    reg.record_calib("bias", 0, None, "/c/bias0.fits", ["/r/a.fits", "/r/b.fits"])
    reg.record_calib("bias", 0, None, "/c/bias0.fits", ["/r/a.fits"])  # replaced, not duplicated
    reg.record_calib("flat", 0, "g", "/c/flat_g0.fits", ["/r/f.fits"])
    reg.record_calib("flat", 0, "r", "/c/flat_r0.fits", ["/r/f2.fits"])
    cal = reg.calibs()
    assert [(c["kind"], c["band"]) for c in cal] == [("bias", None), ("flat", "g"), ("flat", "r")]
    assert cal[0]["inputs"] == ["/r/a.fits"]

    reg.record_frames([{"visit": 5, "detector": 1, "status": "failed", "message": "astrometry: 2 matches",
                        "n_sources": None},
                       {"visit": 5, "detector": 0, "status": "done", "message": None, "n_sources": 120}])
    reg.record_frames([{"visit": 5, "detector": 1, "status": "done", "message": None, "n_sources": 99}])
    fr = reg.frames()
    assert [(f["visit"], f["detector"], f["status"], f["n_sources"]) for f in fr] == [(5, 0, "done", 120),
                                                                                      (5, 1, "done", 99)]
    with pytest.raises(ValueError):
        reg.record_frames([{"visit": 1, "detector": 0, "status": "maybe", "message": None, "n_sources": 0}])

    reg.record_release("DR2", "/rel/DR2", 10, 100)
    reg.record_release("DR1", "/rel/DR1", 5, 50)
    reg.record_release("DR2", "/rel/DR2", 10, 100)  # same again: nothing changes
    assert [r["name"] for r in reg.releases()] == ["DR2", "DR1"]  # oldest first
    with pytest.raises(ReleaseError, match="immutable"):
        reg.record_release("DR1", "/elsewhere", 1, 1)

    reg.set_refcat("/repo/refcat/refcat.parquet", "/in/ref.csv", "abc", 10, ["g", "r"])
    assert reg.refcat() == "/repo/refcat/refcat.parquet" and reg.refcat_info()["bands"] == ["g", "r"]


def _child(code: str, *args) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_reader_waits_for_a_short_write_in_another_process(tmp_path):
    reg = Registry.create(tmp_path)
    child = _child("""
        import sys, time, duckdb
        con = duckdb.connect(sys.argv[1])
        con.execute("INSERT INTO frame VALUES (1, 0, 'done', NULL, 3, now())")
        print("holding", flush=True)
        time.sleep(1.0)
        con.close()
    """, reg.path)
    try:
        assert child.stdout.readline().strip() == "holding"
        rows = reg.frames()  # blocked by the child's read-write connection: retries, then reads
        assert [(r["visit"], r["n_sources"]) for r in rows] == [(1, 3)]
    finally:
        child.wait(timeout=30)


LOCK_CHILD = """
    import sys, time
    from minidr.repo.lock import repo_lock
    from minidr.errors import LockError
    try:
        with repo_lock(sys.argv[1]):
            print("locked", flush=True)
            time.sleep(float(sys.argv[2]))
    except LockError as exc:
        print("error:", exc, flush=True)
"""


def test_lock_refuses_a_second_process_and_names_the_holder(tmp_path):
    with repo_lock(tmp_path):
        assert lock_holder(tmp_path) == os.getpid()
        with repo_lock(tmp_path):  # re-entrant within one process
            pass
        child = _child(LOCK_CHILD, tmp_path, 0)
        out, err = child.communicate(timeout=60)
        assert out.strip() == f"error: repository {tmp_path} is locked by PID {os.getpid()}", err
    child = _child(LOCK_CHILD, tmp_path, 0)  # released: the child gets it now
    out, err = child.communicate(timeout=60)
    assert out.strip() == "locked", err


def test_lock_of_a_killed_holder_is_released(tmp_path):
    child = _child(LOCK_CHILD, tmp_path, 60)
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(LockError, match=f"locked by PID {child.pid}"):
            with repo_lock(tmp_path):
                pass
    finally:
        child.kill()
        child.wait(timeout=30)
    with repo_lock(tmp_path):
        assert lock_holder(tmp_path) == os.getpid()
    assert layout.lock_path(tmp_path).exists()


def test_repo_create_and_open(tmp_path):
    from minidr.config import Config

    repo = Repo.create(tmp_path / "r", partition_rows=1234)
    assert repo.config.release.partition_rows == 1234
    assert isinstance(repo.registry, Registry) and repo.path == (tmp_path / "r").resolve()
    again = Repo(tmp_path / "r")
    assert again.config == Config().replace(release={"partition_rows": 1234})
    with pytest.raises(RepoError, match="not empty"):
        Repo.create(tmp_path / "r")
    (tmp_path / "file").write_text("x")
    with pytest.raises(RepoError, match="not a directory"):
        Repo.create(tmp_path / "file")
    cfg = Config().replace(detection={"threshold": 4.0})
    assert Repo.create(tmp_path / "r2", config=cfg).config.detection.threshold == 4.0
    st = repo.status()
    assert st["raws"]["total"] == 0 and st["releases"] == [] and st["frames"]["pending"] == 0
