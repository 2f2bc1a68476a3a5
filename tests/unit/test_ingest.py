"""minidr.repo.ingest, Repo.ingest/status and the init/ingest/status commands, on real files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.table import Table

from minidr.cli import main
from minidr.config import Config
from minidr.errors import InputError
from minidr.repo import layout
from minidr.repo.ingest import collect_files, refcat_bands
from minidr.repository import Repo
try:
    from test_reader import make_raw  # tests/unit on sys.path (pytest's default rootdir import)
except ImportError:  # pragma: no cover - if tests/unit becomes a package
    from .test_reader import make_raw

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def repo(tmp_path):
    return Repo.create(tmp_path / "repo")


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A small valid batch (read-only): 2 science visits x 2 detectors (plain, gz, fz), a bias, a flat."""
    d = tmp_path_factory.mktemp("good") / "raw"
    make_raw(d / "science" / "v10_d0.fits", visit=10, detector=0)
    make_raw(d / "science" / "v10_d1.fits.gz", visit=10, detector=1, compress="gz")
    make_raw(d / "science" / "v11_d0.fits.fz", visit=11, detector=0, band="r", compress="fz")
    make_raw(d / "science" / "v11_d1.fits", visit=11, detector=1, band="r", layout="primary")
    make_raw(d / "bias" / "b1.fits", visit=1, detector=0, imagetyp="ZERO", band=None)
    make_raw(d / "flat" / "f2.fits", visit=2, detector=0, imagetyp="domeflat", band="g")
    (d / "README.txt").write_text("not a raw")  # ignored when a folder is walked
    return d


def paths_in(repo):
    return sorted(Path(r["path"]).name for r in repo.registry.raw_paths())


def test_ingest_folder_then_again_changes_nothing(repo, good):
    rep = repo.ingest([good])
    assert rep.refused == [] and len(rep.ingested) == 6 and rep.skipped_same == []
    assert all(os.path.isabs(p) for p in rep.ingested)
    assert paths_in(repo) == ["b1.fits", "f2.fits", "v10_d0.fits", "v10_d1.fits.gz", "v11_d0.fits.fz", "v11_d1.fits"]
    raws = repo.registry.raws(imagetyp="science")
    assert [(r.visit, r.detector, r.band) for r in raws] == [(10, 0, "g"), (10, 1, "g"), (11, 0, "r"), (11, 1, "r")]
    row = repo.registry.raw_paths()[0]
    assert row["size"] == Path(row["path"]).stat().st_size and len(row["sha256"]) == 64
    before = repo.registry.dump(with_times=True)
    rep = repo.ingest([good, good / "bias" / "b1.fits"])
    assert rep.ingested == [] and len(rep.skipped_same) == 6 and rep.refused == []
    assert repo.registry.dump(with_times=True) == before


def test_moved_file_is_followed(repo, tmp_path):
    a = make_raw(tmp_path / "in" / "a.fits", visit=5)
    repo.ingest([a])
    b = tmp_path / "moved" / "a.fits"
    b.parent.mkdir()
    a.rename(b)
    rep = repo.ingest([b])
    assert rep.ingested == [] and rep.skipped_same == [str(b.resolve())]
    assert repo.registry.raw(5, 0).path == str(b.resolve())


def test_walk_is_sorted_and_deterministic(good):
    files = [p for p, _ in collect_files([good])]
    assert [p.name for p in files] == ["b1.fits", "f2.fits", "v10_d0.fits", "v10_d1.fits.gz", "v11_d0.fits.fz",
                                       "v11_d1.fits"]
    assert collect_files([good / "nope"])[0][1] == "no such file or directory"


def test_same_visit_detector_from_another_file_refused(repo, good, tmp_path):
    repo.ingest([good])
    before = repo.registry.dump()
    other = make_raw(tmp_path / "other" / "dup.fits", visit=10, detector=1, seed=5)  # different bytes
    rep = repo.ingest([other])
    assert rep.ingested == [] and len(rep.refused) == 1
    assert "dup.fits: EXPID: visit 10 detector 1 is already ingested from a different file" in rep.refused[0][1]
    assert repo.registry.dump() == before
    # and within one batch: the first one wins, the second is refused
    make_raw(tmp_path / "b" / "a.fits", visit=50, detector=0)
    make_raw(tmp_path / "b" / "b.fits", visit=50, detector=0, seed=3)
    rep = repo.ingest([tmp_path / "b"])
    assert [Path(p).name for p in rep.ingested] == ["a.fits"] and Path(rep.refused[0][0]).name == "b.fits"


def _truncate(p):
    data = p.read_bytes()
    p.write_bytes(data[:4000])
    return p


BAD = {
    "truncated": (lambda d: _truncate(make_raw(d / "bad.fits", visit=99)), "truncated"),
    "not_fits": (lambda d: (d / "bad.fits").write_text("SIMPLE? no\n" * 500) and d / "bad.fits", "not a readable FITS"),
    "missing_expid": (lambda d: make_raw(d / "bad.fits", drop=("EXPID",)), "EXPID: missing required keyword"),
    "malformed_exptime": (lambda d: make_raw(d / "bad.fits", visit=99, primary_extra={"EXPTIME": "long"}),
                          "EXPTIME: 'long' is not a number"),
    "datasec_outside": (lambda d: make_raw(d / "bad.fits", visit=99, amp_extra={"DATASEC": "[1:2100,1:20]"}),
                        "DATASEC: [1:2100,1:20] lies outside the 20x20 pixel array"),
    "biassec_outside": (lambda d: make_raw(d / "bad.fits", visit=99, amp_extra={"BIASSEC": "[17:21,1:20]"}),
                        "BIASSEC: [17:21,1:20] lies outside the 20x20 pixel array"),
    "unknown_imagetyp": (lambda d: make_raw(d / "bad.fits", visit=99, imagetyp="arc"), "IMAGETYP: unknown image type 'arc'"),
    "float_pixels": (lambda d: make_raw(d / "bad.fits", visit=99, bitpix=-32), "BITPIX: unsupported BITPIX -32"),
    "flat_no_filter": (lambda d: make_raw(d / "bad.fits", visit=99, imagetyp="flat", drop=("FILTER",)),
                       "FILTER: missing required keyword"),
    "science_no_wcs": (lambda d: make_raw(d / "bad.fits", visit=99, drop=("CTYPE1",)), "CTYPE1: missing"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_file_refused_registry_unchanged_rest_ingested(repo, tmp_path, case):
    build, expect = BAD[case]
    d = tmp_path / "badbox"
    d.mkdir()
    bad = Path(build(d))
    before = repo.registry.dump(with_times=True)
    rep = repo.ingest([bad])
    assert rep.ingested == [] and len(rep.refused) == 1
    path, msg = rep.refused[0]
    assert Path(path).name == "bad.fits" and "bad.fits: " in msg and expect in msg and "\n" not in msg, msg
    assert repo.registry.dump(with_times=True) == before
    make_raw(d / "a_ok.fits", visit=500)
    make_raw(d / "z_ok.fits.fz", visit=501, compress="fz")
    rep = repo.ingest([d])  # the rest of the batch still goes in
    assert [Path(p).name for p in rep.ingested] == ["a_ok.fits", "z_ok.fits.fz"]
    assert [Path(p).name for p, _ in rep.refused] == ["bad.fits"]
    assert paths_in(repo) == ["a_ok.fits", "z_ok.fits.fz"]


def test_missing_path_refused(repo, tmp_path):
    rep = repo.ingest([tmp_path / "absent.fits"])
    assert rep.refused == [(str(tmp_path / "absent.fits"), f"{tmp_path / 'absent.fits'}: no such file or directory")]


# --- reference catalog --------------------------------------------------------------------------


def refcat_table(n=5):
    rng = np.random.default_rng(1)
    return {"ra": rng.uniform(149, 151, n), "dec": rng.uniform(1, 3, n), "g_mag": rng.uniform(15, 20, n),
            "r_mag": rng.uniform(15, 20, n), "id": np.arange(n)}


@pytest.mark.parametrize("fmt", ["parquet", "csv", "fits"])
def test_refcat_formats(repo, tmp_path, fmt):
    cols = refcat_table()
    src = tmp_path / f"ref.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.table(cols), src)
    elif fmt == "csv":
        import pyarrow.csv as pcsv

        pcsv.write_csv(pa.table(cols), src)
    else:
        Table(cols).write(src, format="fits")
    rep = repo.ingest([], refcat=src)
    assert rep.refcat == str(layout.refcat_path(repo.path).resolve()) == repo.registry.refcat()
    t = pq.read_table(rep.refcat)
    np.testing.assert_allclose(t["ra"].to_numpy(), cols["ra"], rtol=1e-12)
    np.testing.assert_allclose(t["g_mag"].to_numpy(), cols["g_mag"], rtol=1e-12)
    assert repo.registry.refcat_info()["bands"] == ["g", "r"] and repo.registry.refcat_info()["n_rows"] == 5


@pytest.mark.parametrize("drop,keyword", [("ra", "ra"), ("dec", "dec"), ("mags", "<band>_mag")])
def test_bad_refcat_refused_nothing_changes(repo, good, tmp_path, drop, keyword):
    cols = refcat_table()
    if drop == "mags":
        del cols["g_mag"], cols["r_mag"]
    else:
        del cols[drop]
    src = tmp_path / "ref.parquet"
    pq.write_table(pa.table(cols), src)
    before = repo.registry.dump(with_times=True)
    with pytest.raises(InputError) as exc:
        repo.ingest([good], refcat=src)
    assert str(exc.value).startswith(f"{src}: {keyword}: ")
    assert repo.registry.dump(with_times=True) == before and not layout.refcat_path(repo.path).exists()


def test_refcat_out_of_range_and_column_map(tmp_path):
    cols = refcat_table()
    cols["dec"][2] = 95.0
    src = tmp_path / "ref.parquet"
    pq.write_table(pa.table(cols), src)
    repo = Repo.create(tmp_path / "r1")
    with pytest.raises(InputError, match="dec: values must be finite and within"):
        repo.ingest([], refcat=src)
    cols = refcat_table()
    src2 = tmp_path / "vizier.parquet"
    pq.write_table(pa.table({"RAJ2000": cols["ra"], "DEJ2000": cols["dec"], "gmag": cols["g_mag"]}), src2)
    cfg = Config().replace(refcat={"ra": "RAJ2000", "dec": "DEJ2000", "mag": "{band}mag"})
    repo2 = Repo.create(tmp_path / "r2", config=cfg)
    assert repo2.ingest([], refcat=src2).refcat is not None
    assert repo2.registry.refcat_info()["bands"] == ["g"]


def test_refcat_bands_pattern():
    assert refcat_bands(["ra", "dec", "g_mag", "r_mag", "g_magErr", "mag"], "{band}_mag") == ["g", "r"]
    assert refcat_bands(["phot_g", "phot_bp"], "phot_{band}") == ["g", "bp"]


# --- status and the command line ------------------------------------------------------------------


def test_status_counts(repo, good):
    repo.ingest([good])
    repo.registry.record_frames([{"visit": 10, "detector": 0, "status": "done", "message": None, "n_sources": 5},
                                 {"visit": 10, "detector": 1, "status": "failed", "message": "x", "n_sources": None}])
    repo.registry.record_release("DR1", str(repo.path / "releases" / "DR1"), 3, 30)
    st = repo.status()
    assert st["raws"]["by_type"] == {"bias": 1, "flat": 1, "science": 4}
    assert st["raws"]["by_band"] == {"flat g": 1, "science g": 2, "science r": 2}
    assert st["raws"]["by_detector"]["science 1"] == 2 and st["raws"]["visits"]["science"] == 2
    assert st["frames"] == {"science": 4, "done": 1, "failed": 1, "pending": 2}
    assert [r["name"] for r in st["releases"]] == ["DR1"]
    assert st["failed_frames"] == [{"visit": 10, "detector": 1, "message": "x"}]
    from minidr.cli.repo import format_status

    text = format_status(st)
    assert "  failed: visit 10 detector 1: x" in text and "master calibrations: none" in text
    assert "DR1" in text.splitlines()[-1] and "releases: 1" in text


def cli(argv, capsys):
    """Run the minidr entry point in-process: (exit code, stdout, stderr)."""
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_init_ingest_status(tmp_path, good, capsys):
    r = tmp_path / "cli"
    code, _, err = cli(["init", r, "--partition-rows", 777], capsys)
    assert code == 0 and "created repository" in err
    assert "partition_rows = 777" in (r / "minidr.toml").read_text()
    code, _, err = cli(["init", r], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and "not empty" in err

    bad = make_raw(tmp_path / "bad" / "x.fits", visit=77, amp_extra={"DATASEC": "[1:2100,1:20]"})
    cols = refcat_table()
    pq.write_table(pa.table(cols), tmp_path / "ref.parquet")
    code, out, err = cli(["ingest", r, good, bad, "--refcat", tmp_path / "ref.parquet"], capsys)
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert lines[0] == f"refused: {bad}: DATASEC: [1:2100,1:20] lies outside the 20x20 pixel array (HDU 1)"
    assert lines[-1] == "6 ingested, 0 already present, 1 refused"
    code, _, err = cli(["ingest", r, good, "--quiet"], capsys)
    assert code == 0 and err == ""
    code, _, err = cli(["ingest", r, "--refcat", tmp_path / "ref.parquet", "-q"], capsys)
    assert code == 0 and err == ""
    code, _, err = cli(["ingest", r], capsys)
    assert code == 2 and "give raw files" in err

    code, out, _ = cli(["status", r], capsys)
    assert code == 0
    assert "raw frames: 6" in out and "science frames: 4 ingested, 0 processed, 0 failed, 4 pending" in out
    table = out.splitlines()
    hdr = next(line for line in table if line.strip().startswith("type") and "visits" in line)
    sci = next(line for line in table if line.strip().startswith("science") and len(line.split()) == 5)
    assert len(hdr) == len(sci)  # aligned columns
    assert "reference catalog: 5 rows, bands g,r" in out

    code, _, err = cli(["status", tmp_path], capsys)
    assert code == 2 and err.startswith("error: ") and "not a minidr repository" in err


def test_cli_real_process_one_line_errors(tmp_path):
    """The installed entry point, in a real process: exit codes and one-line messages, no traceback."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = lambda *a: subprocess.run([sys.executable, "-m", "minidr", *map(str, a)], capture_output=True,
                                    text=True, env=env, timeout=120)
    p = run("ingest", tmp_path / "nowhere", tmp_path)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    assert p.stderr.startswith(f"error: {tmp_path / 'nowhere'}: no such repository")
    assert run("init", tmp_path / "r").returncode == 0
    p = run("ingest", tmp_path / "r", tmp_path / "missing.fits")
    assert p.returncode == 1 and p.stderr.splitlines()[0] == f"refused: {tmp_path / 'missing.fits'}: no such file or directory"
