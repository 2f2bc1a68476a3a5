"""minidr explore: the textual app driven by Pilot over a small synthetic release.

Every test opens the app on real release files (benchmarks/synthetic_release.py through the
release writer) and checks what the user would see: tree labels, rows, the status and error
lines, files written.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minidr.config import QueryConfig
from minidr.query import open_release

pytest.importorskip("textual")

from textual.widgets import DataTable, Input  # noqa: E402

from minidr.tui.app import ExplorerApp  # noqa: E402
from minidr.tui.catalog import CatalogTree  # noqa: E402
from minidr.tui.cutout import asinh_stretch, cut, half_block_lines  # noqa: E402
from minidr.tui.editor import statement_at  # noqa: E402
from minidr.tui.object_view import ObjectScreen, in_magnitudes, lightcurve_points  # noqa: E402
from minidr.tui.results import PAGE  # noqa: E402
from minidr.tui.sky_view import SkyMap, SkyScreen  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from synthetic_release import build_release  # noqa: E402

N_OBJECTS = 600
SIZE = (100, 32)
LONG_QUERY = ("SELECT count(*) FROM Source a, Source b, Source c, Source d "
              "WHERE a.psfFlux + b.psfFlux > c.psfFlux + d.psfFlux")


def sync(fn):
    """Run an async Pilot scenario as a plain test (no asyncio plugin needed)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))
    return wrapper


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("tuirepo")
    build_release(root, N_OBJECTS, name="DR1", partition_rows=200, row_group_rows=50, sources_per_object=3)
    return root


@pytest.fixture()
def dr(repo):
    rel = open_release(repo)
    yield rel
    rel.close()


async def settle(app, pilot):
    await app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


async def run_query(app, pilot, query: str):
    app.editor.load_text(query)
    app.editor.focus()
    await pilot.press("ctrl+j")
    await settle(app, pilot)


# -- pure helpers -------------------------------------------------------------------------

def test_statement_under_cursor():
    text = "SELECT 1;\nSELECT 2 FROM Object;\n\n"
    assert statement_at(text, 3) == "SELECT 1"
    assert statement_at(text, 12) == "SELECT 2 FROM Object"
    assert statement_at(text, len(text)) == "SELECT 2 FROM Object"
    assert statement_at("  ;  ", 0) == ""


def test_cutout_stretch_and_edges():
    img = np.random.default_rng(1).normal(100.0, 5.0, (50, 40)).astype(np.float32)
    img[20, 10] = 5000.0
    c = cut(img, 10.2, 20.4, 3)
    assert c.shape == (7, 7) and c[3, 3] == 5000.0
    s = asinh_stretch(c)
    assert s.max() == 1.0 and s.min() >= 0.0 and s[3, 3] == 1.0
    edge = cut(img, 0.0, 0.0, 2)  # half outside the image: NaN there
    assert np.isnan(edge[0, 0]) and edge[2, 2] == img[0, 0]
    lines = half_block_lines(s[:6])
    assert len(lines) == 3 and all(len(ln) == 7 for ln in lines) and lines[0][0][0] == "▀"


# -- the main screen ----------------------------------------------------------------------

@sync
async def test_tree_shows_tables_and_inserts_a_column(dr):
    app = ExplorerApp(dr, show_timing=False)
    async with app.run_test(size=SIZE) as pilot:
        tree = app.query_one(CatalogTree)
        release = tree.root.children[0]
        labels = {n.data.table: str(n.label) for n in release.children}
        assert set(labels) == {"Object", "Source", "ForcedSource", "Visit", "CcdVisit"}
        assert labels["Object"] == f"Object  {N_OBJECTS:,}"
        await pilot.pause()
        app.editor.load_text("SELECT  FROM Object")
        app.editor.move_cursor((0, 7))
        await pilot.press("f6")
        assert app.focused is tree
        for _ in range(4):  # down to the Object table
            if tree.cursor_node is not None and tree.cursor_node.data and tree.cursor_node.data.table == "Object":
                break
            await pilot.press("down")
        await pilot.press("enter")  # expand
        await pilot.press("down", "down", "down")  # _healpix_29, objectId, coord_ra
        assert tree.cursor_node.data.column == "coord_ra"
        info = str(app.query_one("#catalog-info").render())
        assert "Object.coord_ra" in info and "deg" in info and "right ascension" in info
        await pilot.press("enter")
        assert app.editor.text == "SELECT coord_ra FROM Object"
        assert app.focused is app.editor
        app.editor.load_text("SELECT * FROM ")
        app.editor.move_cursor(app.editor.document.end)
        await pilot.press("f6", "up", "up", "up", "i")  # back up to the Object table
        assert app.editor.text == "SELECT * FROM Object"


@sync
async def test_query_rows_and_lazy_paging(dr):
    app = ExplorerApp(dr, show_timing=False)
    async with app.run_test(size=SIZE) as pilot:
        await run_query(app, pilot, "SELECT objectId, coord_ra, coord_dec FROM Object ORDER BY objectId")
        res = app.results
        assert res.error is None and res.arrow.num_rows == N_OBJECTS
        table = res.table
        assert table.row_count == PAGE < N_OBJECTS
        expected = dr.sql("SELECT min(objectId) FROM Object").column(0)[0].as_py()
        assert str(table.get_cell_at((0, 0))) == str(expected)
        status = str(app.query_one("#results-status").render())
        assert f"{N_OBJECTS} rows" in status and "truncated" not in status and f"{PAGE} loaded" in status
        assert "[deg]" in str(table.ordered_columns[1].label)
        # a click on a header sorts the whole result, again: descending
        await pilot.click("#results-table", offset=(18, 0))  # coord_ra
        await pilot.pause()
        ras = sorted(res.arrow.column("coord_ra").to_pylist())
        assert float(str(table.get_cell_at((0, 1)))) == pytest.approx(ras[0], rel=1e-8)
        await pilot.click("#results-table", offset=(18, 0))
        await pilot.pause()
        assert float(str(table.get_cell_at((0, 1)))) == pytest.approx(ras[-1], rel=1e-8)
        assert res.arrow.column("coord_ra")[0].as_py() == ras[-1]
        assert "sorted by coord_ra ↓" in str(app.query_one("#results-status").render())
        table.focus()
        for _ in range(3):  # to the last loaded row, again and again: pages come in
            await pilot.press("ctrl+end")
            await pilot.pause()
        assert table.row_count == N_OBJECTS


@sync
async def test_truncated_at_the_row_cap(repo):
    dr = open_release(repo, config=QueryConfig(max_rows=50))
    try:
        app = ExplorerApp(dr, show_timing=False)
        async with app.run_test(size=SIZE) as pilot:
            await run_query(app, pilot, "SELECT * FROM Source")
            assert app.results.arrow.num_rows == 50
            assert "truncated" in str(app.query_one("#results-status").render())
    finally:
        dr.close()


@sync
async def test_bad_query_error_in_one_line(dr):
    app = ExplorerApp(dr, show_timing=False)
    async with app.run_test(size=SIZE) as pilot:
        await run_query(app, pilot, "SELECT no_such_column\nFROM Object")
        err = app.results.error
        assert err and "\n" not in err and "no_such_column" in err
        status = app.query_one("#results-status")
        assert status.has_class("error") and "no_such_column" in str(status.render())
        await run_query(app, pilot, "DELETE FROM Object")  # read-only: refused, app still alive
        assert app.results.error and "\n" not in app.results.error
        await run_query(app, pilot, "SELECT count(*) AS n FROM Object")
        assert app.results.error is None and app.results.arrow.column("n")[0].as_py() == N_OBJECTS
        # a join repeating column names is shown as it is
        await run_query(app, pilot, "SELECT a.objectId, b.objectId FROM Object a JOIN Object b USING (objectId) LIMIT 3")
        assert app.results.error is None and app.results.table.row_count == 3
        assert len(app.results.table.columns) == 2


@sync
async def test_history_with_ctrl_up(dr):
    app = ExplorerApp(dr, show_timing=False)
    async with app.run_test(size=SIZE) as pilot:
        await run_query(app, pilot, "SELECT 1 AS a")
        await run_query(app, pilot, "SELECT 2 AS b")
        app.editor.load_text("draft")
        await pilot.press("ctrl+up")
        assert app.editor.text == "SELECT 2 AS b"
        await pilot.press("ctrl+up")
        assert app.editor.text == "SELECT 1 AS a"
        await pilot.press("ctrl+down", "ctrl+down")
        assert app.editor.text == "draft"


@sync
async def test_cone_search_form(dr):
    row = dr.sql("SELECT coord_ra, coord_dec FROM Object ORDER BY objectId LIMIT 1").to_pylist()[0]
    ra, dec = row["coord_ra"], row["coord_dec"]
    h = ra / 15.0
    sexa_ra = f"{int(h):02d}:{int(h * 60) % 60:02d}:{(h * 3600) % 60:06.3f}"
    app = ExplorerApp(dr, show_timing=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        app.screen.query_one("#cone-ra", Input).value = sexa_ra
        app.screen.query_one("#cone-dec", Input).value = f"{dec:.6f}"
        app.screen.query_one("#cone-radius", Input).value = "3600"
        app.screen.query_one("#cone-ra", Input).focus()
        await pilot.press("enter")
        await settle(app, pilot)
        got = app.results.arrow
        want = dr.cone(ra, dec, 3600)
        assert got.num_rows == want.num_rows > 0
        assert got.column("objectId").to_pylist() == want.column("objectId").to_pylist()
        assert got.column("separation")[0].as_py() < 0.1
        # a bad field keeps the form open with a message
        await pilot.press("f3")
        await pilot.pause()
        app.screen.query_one("#cone-radius", Input).value = "wide"
        app.screen.query_one("#cone-radius", Input).focus()
        await pilot.press("enter")
        await pilot.pause()
        assert "radius" in str(app.screen.query_one("#cone-error").render())
        await pilot.press("escape")


@sync
async def test_object_view(dr):
    app = ExplorerApp(dr, show_timing=False)
    async with app.run_test(size=SIZE) as pilot:
        await run_query(app, pilot, "SELECT objectId, nDetections FROM Object ORDER BY objectId LIMIT 5")
        oid = app.results.arrow.column("objectId")[0].as_py()
        app.results.table.focus()
        await pilot.press("enter")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, ObjectScreen) and screen.object_id == oid
        stats = screen.query_one("#object-stats", DataTable)
        assert [str(stats.get_cell_at((r, 0))) for r in range(stats.row_count)] == ["g", "r", "i"]
        lc = dr.lightcurve(oid)
        assert screen.lightcurve.num_rows == lc.num_rows == 6  # 3 Sources + 3 ForcedSources
        points = lightcurve_points(screen.lightcurve)
        assert sum(p["det"]["t"].size + p["forced"]["t"].size for p in points.values()) == 6
        await pilot.press("m")  # magnitudes: Sources and forced points with positive flux, limits
        await pilot.pause()
        mags = in_magnitudes(points)
        for band, p in points.items():
            pos = p["det"]["f"] > 0
            assert np.allclose(mags[band]["det"]["f"], -2.5 * np.log10(p["det"]["f"][pos]) + 31.4)
            assert mags[band]["forced"]["lim_t"].size == int(p["forced"]["nondet"].sum())
        assert screen.mags
        det = screen.query_one("#object-detections", DataTable)
        assert det.row_count == 3
        assert "no calexp" in screen.cutout_info  # synthetic release: no processed frames
        await pilot.press("c")
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.screen_stack[0]


@sync
async def test_escape_cancels_a_long_query(dr):
    app = ExplorerApp(dr, show_timing=False)
    async with app.run_test(size=SIZE) as pilot:
        app.editor.load_text(LONG_QUERY)
        await pilot.press("ctrl+j")
        await pilot.pause(0.3)
        assert app.running
        assert "running" in str(app.query_one("#results-status").render())
        await pilot.press("escape")
        await settle(app, pilot)
        assert not app.running
        assert app.results.error == "query cancelled"
        await run_query(app, pilot, "SELECT 42 AS answer")  # the connection is fine afterwards
        assert app.results.arrow.column("answer")[0].as_py() == 42
        # a new query while one runs replaces it: the long one is cancelled, its error not shown
        app.editor.load_text(LONG_QUERY)
        await pilot.press("ctrl+j")
        await pilot.pause(0.3)
        await run_query(app, pilot, "SELECT 7 AS seven")
        assert not app.running and app.results.error is None
        assert app.results.arrow.column("seven")[0].as_py() == 7


@sync
async def test_export_csv(dr, tmp_path):
    out = tmp_path / "objects.csv"
    app = ExplorerApp(dr, show_timing=False)
    async with app.run_test(size=SIZE) as pilot:
        await run_query(app, pilot, "SELECT objectId, coord_ra FROM Object ORDER BY objectId")
        await pilot.press("ctrl+e")
        await pilot.pause()
        box = app.screen.query_one("#export-path", Input)
        box.value = str(out)
        box.focus()
        await pilot.press("enter")
        await pilot.pause()
        # parquet keeps the units
        pq_out = tmp_path / "objects.parquet"
        await pilot.press("ctrl+e")
        await pilot.pause()
        box = app.screen.query_one("#export-path", Input)
        box.value = str(pq_out)
        box.focus()
        await pilot.press("enter")
        await pilot.pause()
    import pyarrow.parquet as pq

    back = pq.read_table(pq_out)
    assert back.num_rows == N_OBJECTS and back.schema.field("coord_ra").metadata[b"unit"] == b"deg"
    with open(out, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["objectId", "coord_ra"]
    assert len(rows) == N_OBJECTS + 1  # every row, not only the loaded pages
    want = dr.sql("SELECT objectId, coord_ra FROM Object ORDER BY objectId")
    assert [int(r[0]) for r in rows[1:]] == want.column("objectId").to_pylist()
    assert [float(r[1]) for r in rows[1:]] == want.column("coord_ra").to_pylist()


@sync
async def test_sky_view_counts_and_cell_query(dr):
    app = ExplorerApp(dr, show_timing=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, SkyScreen)
        sky = screen.query_one(SkyMap)
        assert int(sky.grid.sum()) == N_OBJECTS
        cell = sky.cursor  # starts on the densest cell
        n = int(sky.grid[cell.j, cell.i])
        assert n == int(sky.grid.max()) > 0
        assert "partition" in str(screen.query_one("#sky-info").render())
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.screen is app.screen_stack[0]
        assert "box(coord_ra, coord_dec" in app.editor.text
        assert app.results.arrow.num_rows == min(n, 1000)
        # partition mode: Enter queries the HEALPix partition under the cursor
        await pilot.press("f4")
        await settle(app, pilot)
        await pilot.press("p")
        await pilot.pause()
        screen = app.screen
        k, pix = screen.partition_of(screen.query_one(SkyMap).cursor)
        assert (k, pix) in set(zip(dr.catalogs["Object"].orders.tolist(), dr.catalogs["Object"].pixels.tolist()))
        await pilot.press("enter")
        await settle(app, pilot)
        shift = 2 * (29 - k)
        want = dr.sql(f"SELECT count(*) FROM Object WHERE _healpix_29 >> {shift} = {pix}").column(0)[0].as_py()
        assert f"Norder={k} Npix={pix}" in app.editor.text
        assert app.results.arrow.num_rows == min(want, 1000) > 0


@sync
async def test_help_and_quit(dr):
    app = ExplorerApp(dr, show_timing=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("f6", "question_mark")  # ? outside the editor
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        await pilot.press("ctrl+q")
        await pilot.pause()
    assert app.return_code == 0


# -- the command ----------------------------------------------------------------------------

def test_cli_without_release_is_one_line(tmp_path, capsys):
    from minidr.cli import main

    (tmp_path / "releases").mkdir()
    with pytest.raises(SystemExit) as exc:
        main(["explore", str(tmp_path)])
    assert exc.value.code != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "release" in err and "Traceback" not in err


# -- snapshots of the main screens at 80x24 (SVG in tests/unit/__snapshots__/) ---------------

def _still(app):
    app.editor.cursor_blink = False


def test_snapshot_start_screen(dr, snap_compare):
    app = ExplorerApp(dr, show_timing=False)

    async def before(pilot):
        _still(pilot.app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)


def test_snapshot_results(dr, snap_compare):
    app = ExplorerApp(dr, show_timing=False)

    async def before(pilot):
        _still(pilot.app)
        await pilot.press("ctrl+j")
        await settle(pilot.app, pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)


def test_snapshot_object_view(dr, snap_compare):
    app = ExplorerApp(dr, show_timing=False)

    async def before(pilot):
        _still(pilot.app)
        await pilot.press("ctrl+j")
        await settle(pilot.app, pilot)
        pilot.app.results.table.focus()
        await pilot.press("enter")
        await settle(pilot.app, pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)


@sync
async def test_object_cutout_from_a_calexp(repo, dr):
    """A calexp with one planted star at a Source's (x, y): the cutout is centred on it."""
    from minidr.products import Exposure, RawInfo
    from minidr.repo.layout import calexp_path
    from minidr.repo.store import write_calexp

    src = dr.sql("SELECT objectId, visit, detector, x, y, band FROM Source").to_pylist()
    per_frame = {}
    for r in src:
        per_frame.setdefault((r["objectId"], r["visit"], r["detector"]), []).append(r)
    # the Source nearest the detector's corner whose Object has no other Source on that frame
    best = min((r for r in src if len(per_frame[(r["objectId"], r["visit"], r["detector"])]) == 1),
               key=lambda r: max(r["x"], r["y"]))
    ny, nx = int(best["y"]) + 40, int(best["x"]) + 40
    yy, xx = np.mgrid[0:ny, 0:nx]
    rng = np.random.default_rng(5)
    image = (rng.normal(200.0, 5.0, (ny, nx))
             + 5000.0 * np.exp(-((xx - best["x"]) ** 2 + (yy - best["y"]) ** 2) / (2 * 1.5**2))).astype(np.float32)
    info = RawInfo(path="synthetic", imagetyp="science", exptime=30.0, mjd=60000.0, band=best["band"],
                   visit=int(best["visit"]), detector=int(best["detector"]), instrument="synthetic", ra=None,
                   dec=None, shape=(ny, nx), amps=())
    path = calexp_path(repo, int(best["visit"]), int(best["detector"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_calexp(path, Exposure(image=image, variance=np.full_like(image, 25.0),
                                mask=np.zeros(image.shape, np.uint16), info=info))
    try:
        app = ExplorerApp(dr, show_timing=False)
        async with app.run_test(size=SIZE) as pilot:
            app.open_object(best["objectId"])
            await settle(app, pilot)
            screen = app.screen
            assert f"visit {best['visit']}  detector {best['detector']}" in screen.cutout_info
            view = screen.query_one("#object-cutout")
            j, i = np.unravel_index(np.nanargmax(view.levels), view.levels.shape)
            centre = view.levels.shape[0] // 2
            assert abs(i - centre) <= 1 and abs(j - centre) <= 1  # the star in the middle
            await pilot.press("c")
            await pilot.pause()
            line = view.render_line(view.size.height // 2)
            assert "▀" in line.text
    finally:
        path.unlink()


@sync
async def test_browser_switches_release(tmp_path):
    build_release(tmp_path, 50, name="DR1", seed=3, sources_per_object=1)
    build_release(tmp_path, 80, name="DR2", seed=4, sources_per_object=1)
    rel = open_release(tmp_path)
    assert rel.name == "DR2"  # the newest by default
    app = ExplorerApp(rel, show_timing=False)
    async with app.run_test(size=SIZE) as pilot:
        tree = app.query_one(CatalogTree)
        assert [n.data.release for n in tree.root.children] == ["DR1", "DR2"]
        tree.focus()
        tree.move_cursor(tree.root.children[0])
        await pilot.press("enter")
        await pilot.pause()
        assert app.release.name == "DR1"
        labels = {n.data.table: str(n.label) for n in tree.root.children[0].children}
        assert labels["Object"] == "Object  50"
        await run_query(app, pilot, "SELECT count(*) AS n FROM Object")
        assert app.results.arrow.column("n")[0].as_py() == 50
    app.release.close()


def test_cli_imports_no_textual_until_it_runs():
    code = ("import sys, minidr, minidr.cli, minidr.cli.explore, minidr.tui; "
            "assert 'textual' not in sys.modules, 'textual imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_unknown_theme_is_one_error(dr):
    from minidr.errors import InputError

    with pytest.raises(InputError, match="textual-light"):
        ExplorerApp(dr, theme="no-such-theme")


@sync
async def test_light_theme_runs_a_query(dr):
    app = ExplorerApp(dr, show_timing=False, theme="textual-light")
    async with app.run_test(size=SIZE) as pilot:
        await run_query(app, pilot, "SELECT objectId FROM Object LIMIT 3")
        assert app.theme == "textual-light" and app.results.arrow.num_rows == 3


@sync
async def test_query_finishing_behind_another_screen(dr):
    app = ExplorerApp(dr, show_timing=False)
    async with app.run_test(size=SIZE) as pilot:
        app.editor.load_text(LONG_QUERY)
        await pilot.press("ctrl+j")
        await pilot.pause(0.2)
        await pilot.press("f1")  # help on top while the query runs
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"
        dr.interrupt()  # the query ends while the help is shown
        await settle(app, pilot)
        assert app.results.error == "query cancelled" and not app.running
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.screen_stack[0]


def test_cone_fields():
    from minidr.tui.cone import parse_cone

    tables = ["Object", "Source"]
    q = parse_cone("10:12:45.3", "+02:03:04", "30", "object", tables)
    assert q.ra == pytest.approx(153.18875) and q.dec == pytest.approx(2.0511111) and q.table == "Object"
    q2 = parse_cone("10:12:45.3 +02:03:04", "", "30", "Source", tables)  # pasted whole
    assert (q2.ra, q2.dec, q2.table) == (q.ra, q.dec, "Source")
    for fields, word in [(("x", "0", "1", "Object"), "RA"), (("1", "95", "1", "Object"), "Dec"),
                         (("1", "0", "-1", "Object"), "radius"), (("1", "0", "1", "Visit"), "table")]:
        with pytest.raises(ValueError, match=word):
            parse_cone(*fields, tables)


@sync
async def test_adql_dialect_with_f7(dr):
    row = dr.sql("SELECT coord_ra, coord_dec FROM Object ORDER BY objectId LIMIT 1").to_pylist()[0]
    adql = (f"SELECT TOP 5 objectId FROM Object WHERE CONTAINS(POINT('ICRS', coord_ra, coord_dec), "
            f"CIRCLE('ICRS', {row['coord_ra']}, {row['coord_dec']}, 1.0)) = 1")
    app = ExplorerApp(dr, show_timing=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f7")
        assert app.dialect == "adql" and "adql" in str(app.editor.border_title)
        await run_query(app, pilot, adql)
        assert app.results.error is None
        assert app.results.arrow.num_rows == dr.sql(adql, dialect="adql").num_rows > 0
        await pilot.press("f7", "f7")
        assert app.dialect == "duckdb"


def test_stat_text():
    from minidr.tui.object_view import stat_text

    assert stat_text(801740.4, "flux") == "801,740" and stat_text(500.2, "flux") == "500.2"
    assert stat_text(16.6399, "mag") == "16.640" and stat_text(float("nan"), "mag") == "NaN"
    assert stat_text(36.81, "chi2") == "36.8" and stat_text(3, "int") == "3" and stat_text(None, "flux") == "NULL"
