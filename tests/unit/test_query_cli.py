"""minidr sql / cone / xmatch through click, on a tiny synthetic release."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.table import Table
from click.testing import CliRunner

from minidr.cli import cli

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from synthetic_release import build_release  # noqa: E402


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("clirepo")
    build_release(root, 400, name="DR1", partition_rows=100, row_group_rows=50, sources_per_object=1)
    return root


@pytest.fixture(scope="module")
def first(repo):
    from minidr.query import open_release

    dr = open_release(repo)
    return dr.sql("SELECT objectId, coord_ra, coord_dec FROM Object ORDER BY objectId LIMIT 1").to_pylist()[0]


def run(args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


@pytest.fixture
def main(capsysbinary):
    """Run through minidr.cli.main (the real error handling): (exit code, stdout bytes, stderr text)."""
    from minidr.cli import main as cli_main

    def call(args):
        try:
            cli_main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code
        cap = capsysbinary.readouterr()
        return code, cap.out, cap.err.decode()

    return call


def test_sql_formats(repo, tmp_path):
    r = run(["sql", repo, "SELECT objectId, coord_ra FROM Object ORDER BY objectId LIMIT 3", "--format", "csv"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == "objectId,coord_ra" and len(lines) == 4
    r = run(["sql", repo, "SELECT band, count(*) AS n FROM Source GROUP BY band ORDER BY band", "--format", "json"])
    assert sum(row["n"] for row in json.loads(r.stdout)) == 400
    r = run(["sql", repo, "SELECT objectId, coord_dec FROM Object LIMIT 2", "--format", "table"])
    assert "[deg]" in r.stdout and "objectId" in r.stdout
    out = tmp_path / "o.parquet"
    r = run(["sql", repo, "SELECT * FROM Object", "--format", "parquet", "-o", out, "--max-rows", 10])
    t = pq.read_table(out)
    assert t.num_rows == 10 and t.schema.field("coord_ra").metadata[b"unit"] == b"deg"
    assert "truncated" in r.stderr
    out = tmp_path / "o.fits"
    run(["sql", repo, "SELECT objectId, g_psfFluxMean FROM Object", "--format", "fits", "-o", out])
    with fits.open(out) as h:
        assert len(h[1].data) == 400 and h[1].header["TUNIT2"] == "nJy"


def test_sql_dialects_and_explain(repo, first):
    ra, dec = first["coord_ra"], first["coord_dec"]
    adql = (f"SELECT TOP 1 objectId FROM Object WHERE CONTAINS(POINT('ICRS', coord_ra, coord_dec), "
            f"CIRCLE('ICRS', {ra}, {dec}, 0.0001)) = 1")
    r = run(["sql", repo, adql, "--dialect", "adql", "--format", "csv"])
    assert r.stdout.splitlines()[1] == str(first["objectId"])
    r = run(["sql", repo, f"SELECT `objectId` FROM Object WHERE qserv_areaspec_circle({ra}, {dec}, 0.0001)",
             "--dialect", "qserv", "--format", "csv"])
    assert r.stdout.splitlines()[1] == str(first["objectId"])
    r = run(["sql", repo, f"SELECT objectId FROM Object WHERE cone(coord_ra, coord_dec, {ra}, {dec}, 0.001)", "--explain"])
    assert "Total Files Read: 1" in r.stdout


def test_cone_sexagesimal_and_negative_dec(repo, first):
    ra, dec = first["coord_ra"], first["coord_dec"]
    h = ra / 15
    sra = f"{int(h):02d}:{int(h * 60 % 60):02d}:{h * 3600 % 60:07.4f}"
    sign = "-" if dec < 0 else "+"
    d = abs(dec)
    sdec = f"{sign}{int(d):02d}:{int(d * 60 % 60):02d}:{d * 3600 % 60:06.3f}"
    r = run(["cone", repo, sra, sdec, 2.0, "--columns", "objectId,coord_ra", "--format", "csv"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == "objectId,coord_ra,separation" and lines[1].startswith(str(first["objectId"]) + ",")
    r = run(["cone", repo, ra, dec, 1.0, "--format", "json"])
    assert json.loads(r.stdout)[0]["objectId"] == first["objectId"]


def test_xmatch_csv_and_fits(repo, first, tmp_path):
    csv = tmp_path / "in.csv"
    csv.write_text(f"name,ra,dec\na,{first['coord_ra']},{first['coord_dec']}\nb,10.0,-5.0\n")
    out = tmp_path / "m.csv"
    r = run(["xmatch", repo, csv, "--radius", 1.0, "-o", out, "--format", "csv"])
    assert r.exit_code == 0, r.output
    t = pcsv.read_csv(out)
    assert t["name"].to_pylist() == ["a", "b"]
    assert t["objectId"].to_pylist() == [first["objectId"], None]
    assert "1 of 2 positions matched" in r.stderr
    fin = tmp_path / "in.fits"
    Table({"RA_DEG": [first["coord_ra"]], "DEC_DEG": [first["coord_dec"]]}).write(fin)
    r = run(["xmatch", repo, fin, "--ra-column", "RA_DEG", "--dec-column", "DEC_DEG", "--format", "json"])
    assert json.loads(r.stdout)[0]["objectId"] == first["objectId"]


def test_errors_are_one_line_and_nonzero(repo, tmp_path, main):
    code, out, err = main(["sql", repo, "DROP VIEW Object"])
    assert code != 0 and err.count("\n") == 1 and "read-only" in err and out == b""
    code, out, err = main(["sql", repo, "SELECT * FROM Nope"])
    assert code != 0 and err.startswith("error: unknown table") and err.count("\n") == 1
    code, out, err = main(["cone", repo, "25:00:00", "0", "5"])
    assert code != 0 and "RA" in err and err.count("\n") == 1
    code, out, err = main(["sql", repo, "SELECT 1", "--release", "DR7"])
    assert code != 0 and "DR7" in err and err.count("\n") == 1
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    code, out, err = main(["xmatch", repo, bad])
    assert code != 0 and "no RA column 'ra'" in err


def test_help():
    for cmd in ("sql", "cone", "xmatch"):
        r = run([cmd, "--help"])
        assert r.exit_code == 0 and "--format" in r.output
