"""ExplorerApp: the release browser, SQL editor and results, in the manner of Harlequin.

Every query runs in a worker thread under the release's time limit and row cap, so the
screen never freezes; Esc cancels it through :meth:`minidr.query.Release.interrupt`.
"""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
from textual import work
from textual.app import App, ComposeResult
from textual.actions import SkipAction
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer

from ..errors import InputError, MinidrError
from ._format import one_line
from .catalog import CatalogPane, CatalogTree
from .cone import ConeQuery, ConeScreen
from .editor import SqlEditor
from .export import ExportScreen, export_table
from .help import HelpScreen
from .history import HistoryScreen
from .object_view import ObjectScreen
from .results import ResultsPane, ResultsTable
from .sky_view import SkyScreen


def repo_of(release) -> Path | None:
    """The repository a release directory belongs to (REPO/releases/NAME), if any."""
    p = Path(release.path)
    return p.parent.parent if p.parent.name == "releases" else None


def release_names(release) -> list[str]:
    repo = repo_of(release)
    if repo is None:
        return [release.name]
    from ..release.manifest import list_releases

    names = list_releases(repo / "releases")
    return names or [release.name]


TABLE_ORDER = ("Object", "Source", "ForcedSource", "Visit", "CcdVisit")


def ordered_tables(release) -> dict[str, int]:
    """Table -> rows, the Rubin tables first in their usual order, then the others by name."""
    rows = release.tables()
    key = {t: (TABLE_ORDER.index(t) if t in TABLE_ORDER else len(TABLE_ORDER), t) for t in rows}
    return {t: rows[t] for t in sorted(rows, key=key.get)}


def starter_query(release) -> str:
    if "Object" not in release.catalogs:
        first = next(iter(release.catalogs))
        return f"SELECT *\nFROM {first}\nLIMIT 100"
    names = release.schema("Object").names
    cols = [c for c in ("objectId", "coord_ra", "coord_dec", "nDetections", "g_psfMag", "r_psfMag") if c in names]
    return f"SELECT {', '.join(cols) or '*'}\nFROM Object\nORDER BY objectId\nLIMIT 1000"


class ExplorerApp(App):
    """``minidr explore``: browse, query and look at one release."""

    CSS_PATH = "app.tcss"
    TITLE = "minidr explore"
    BINDINGS = [
        Binding("ctrl+j,ctrl+enter", "run_query", "Run", priority=True),
        Binding("ctrl+e", "export", "Export", priority=True),
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("f2", "focus_pane('editor')", "Editor", show=False, priority=True),
        Binding("f5", "focus_pane('results-table')", "Results", show=False, priority=True),
        Binding("f6", "focus_pane('catalog-tree')", "Catalog", show=False, priority=True),
        Binding("f3", "cone", "Cone"),
        Binding("f4", "sky", "Sky"),
        Binding("f8", "history", "History"),
        Binding("f7", "dialect", "Dialect", show=False, priority=True),
        Binding("f9", "toggle_catalog", "Browser", show=False, priority=True),
        Binding("escape", "cancel", "Cancel", show=False, priority=True),
        Binding("f1", "help", "Help"),
        Binding("question_mark", "help", "Help", show=False),
    ]

    def __init__(self, release, *, query: str | None = None, show_timing: bool = True,
                 theme: str | None = None) -> None:
        super().__init__()
        if theme is not None:
            if theme not in self.available_themes:
                raise InputError(f"unknown theme {theme!r}; themes: {', '.join(self.available_themes)}")
            self.theme = theme
        self.release = release
        self.repo = repo_of(release)
        self.show_timing = show_timing
        self.initial_query = query if query is not None else starter_query(release)
        self.running = False
        self.dialect = "duckdb"
        self._seq = 0
        self.last_cone: tuple[str, str, str, str] | None = None
        self.last_error: str | None = None
        self.sub_title = release.name

    # -- layout -------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        rel = self.release
        tables = ordered_tables(rel)
        schemas = {t: rel.schema(t) for t in tables}
        with Horizontal(id="main"):
            yield CatalogPane(release_names(rel), rel.name, tables, schemas, id="catalog")
            with Vertical(id="work"):
                yield SqlEditor(self.initial_query, id="editor")
                yield ResultsPane(show_timing=self.show_timing, id="results")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#catalog", CatalogPane).border_title = f"Release {self.release.name}"
        self._title_editor()
        self.query_one("#results", ResultsPane).border_title = "Results"
        editor = self.query_one("#editor", SqlEditor)
        editor.focus()
        self.call_after_refresh(lambda: editor.move_cursor(editor.document.end))

    def _title_editor(self) -> None:
        self.editor.border_title = f"Query ({self.dialect}, F7 changes)  ctrl+j runs"

    def action_dialect(self) -> None:
        """F7: the SQL dialect of the editor: DuckDB (with the spatial functions), ADQL, Qserv."""
        self._main_screen_only()
        self.dialect = self.DIALECTS[(self.DIALECTS.index(self.dialect) + 1) % len(self.DIALECTS)]
        self._title_editor()

    # widgets of the main screen, found there even while another screen is on top
    @property
    def editor(self) -> SqlEditor:
        return self.screen_stack[0].query_one("#editor", SqlEditor)

    @property
    def results(self) -> ResultsPane:
        return self.screen_stack[0].query_one("#results", ResultsPane)

    # -- actions ------------------------------------------------------------------------

    MAIN_SCREEN_ACTIONS = {"run_query", "export", "focus_pane", "cone", "sky", "history", "toggle_catalog", "dialect"}
    DIALECTS = ("duckdb", "adql", "qserv")

    def check_action(self, action: str, parameters) -> bool | None:
        """Keys of the main screen are off (and hidden from the footer) on the others."""
        if action in self.MAIN_SCREEN_ACTIONS and len(self.screen_stack) > 1:
            return False
        return True

    def _main_screen_only(self) -> None:
        """Let the key go to the screen on top when it is not the main one."""
        if self.screen is not self.screen_stack[0]:
            raise SkipAction()

    def action_focus_pane(self, widget_id: str) -> None:
        self._main_screen_only()
        self.screen_stack[0].query_one(f"#{widget_id}").focus()

    def action_toggle_catalog(self) -> None:
        self._main_screen_only()
        pane = self.screen_stack[0].query_one("#catalog", CatalogPane)
        pane.display = not pane.display
        if not pane.display and pane.has_focus_within:
            self.editor.focus()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_run_query(self) -> None:
        self._main_screen_only()
        query = self.editor.current_query()
        if not query:
            self.results.show_error("nothing to run: the editor is empty")
            return
        self.editor.remember(query)
        self.run_sql(query)

    def _start(self, label: str) -> int:
        """A new run: cancels the one running (its result will be ignored); returns its number."""
        if self.running:
            self.release.interrupt()
        self.running = True
        self._seq += 1
        self.results.show_running(label)
        return self._seq

    def run_sql(self, query: str, label: str = "") -> None:
        self._sql_worker(query, label, self._start(label))

    @work(thread=True, group="query", exit_on_error=False)
    def _sql_worker(self, query: str, label: str, seq: int) -> None:
        dialect = self.dialect
        self._run_in_thread(lambda: self.release.sql(query, dialect=dialect), label, seq)

    def _run_in_thread(self, fn, label: str, seq: int) -> None:
        t0 = time.perf_counter()
        try:
            table = fn()
        except MinidrError as exc:
            self.call_from_thread(self._done, seq, None, str(exc), label, 0.0)
            return
        except Exception as exc:  # noqa: BLE001 - any failure is shown in place, not a crash
            self.call_from_thread(self._done, seq, None, f"{type(exc).__name__}: {exc}", label, 0.0)
            return
        self.call_from_thread(self._done, seq, table, None, label, time.perf_counter() - t0)

    def _done(self, seq: int, table: pa.Table | None, error: str | None, label: str, elapsed: float) -> None:
        if seq != self._seq:  # a run replaced by a newer one
            return
        self.running = False
        self.last_error = None if error is None else one_line(error)
        if error is not None:
            self.results.show_error(error)
        else:
            self.results.show_table(table, label=label, elapsed=elapsed)

    def action_cancel(self) -> None:
        if not self.running or len(self.screen_stack) > 1:
            raise SkipAction()  # Esc then does what the focused widget or screen does with it
        self.release.interrupt()

    def action_cone(self) -> None:
        if self.screen is not self.screen_stack[0]:
            return
        self.push_screen(ConeScreen([t for t, c in self.release.catalogs.items() if c.ra], self.last_cone),
                         self._cone_chosen)

    def _cone_chosen(self, q: ConeQuery | None) -> None:
        if q is None:
            return
        self.last_cone = (f"{q.ra:g}", f"{q.dec:g}", f"{q.radius_arcsec:g}", q.table)
        label = f"cone {q.table} {q.ra:.5f} {q.dec:+.5f} r={q.radius_arcsec:g}″"
        self._cone_worker(q, label, self._start(label))

    @work(thread=True, group="query", exit_on_error=False)
    def _cone_worker(self, q: ConeQuery, label: str, seq: int) -> None:
        cols = [c for c in self.release.schema(q.table).names if c != "_healpix_29"]
        self._run_in_thread(lambda: self.release.cone(q.ra, q.dec, q.radius_arcsec, table=q.table, columns=cols),
                            label, seq)

    def action_export(self) -> None:
        self._main_screen_only()
        table = self.results.arrow
        if table is None:
            self.notify("nothing to export: run a query first", severity="warning")
            return
        self.push_screen(ExportScreen(table.num_rows), self._export_to)

    def _export_to(self, path: str | None) -> None:
        table = self.results.arrow
        if not path or table is None:
            return
        try:
            out, fmt = export_table(table, path)
        except (MinidrError, OSError) as exc:
            self.notify(one_line(exc), title="export failed", severity="error")
            return
        self.notify(f"{table.num_rows:,} rows → {out} ({fmt})", title="exported")

    def action_history(self) -> None:
        if self.screen is not self.screen_stack[0] or not self.editor.queries:
            return
        self.push_screen(HistoryScreen(self.editor.queries), self._history_chosen)

    def _history_chosen(self, query: str | None) -> None:
        if query:
            self.editor.load_text(query)
            self.editor.focus()

    def action_sky(self) -> None:
        if self.screen is not self.screen_stack[0]:
            return
        table = "Object" if "Object" in self.release.catalogs else next(
            (t for t, c in self.release.catalogs.items() if c.ra), None)
        if table is None:
            self.notify("no table with positions", severity="warning")
            return
        self.push_screen(SkyScreen(self.release, table), self._sky_chosen)

    def _sky_chosen(self, query: str | None) -> None:
        if query:
            self.editor.load_text(query)
            self.editor.remember(query)
            self.run_sql(query, label="from the sky map")

    def open_object(self, object_id: int) -> None:
        self.push_screen(ObjectScreen(self.release, object_id, self.repo))

    # -- messages -----------------------------------------------------------------------

    def on_catalog_tree_column_chosen(self, event: CatalogTree.ColumnChosen) -> None:
        self.editor.insert(event.name)
        self.editor.focus()

    def on_catalog_tree_release_chosen(self, event: CatalogTree.ReleaseChosen) -> None:
        self._switch_release(event.name)

    def _switch_release(self, name: str) -> None:
        from ..query import open_release

        if self.repo is None:
            return
        if self.running:
            self.notify("a query is running: Esc cancels it first", severity="warning")
            return
        try:
            new = open_release(self.repo, name)
        except MinidrError as exc:
            self.notify(one_line(exc), severity="error")
            return
        old, self.release = self.release, new
        old.close()
        self.sub_title = new.name
        tables = ordered_tables(new)
        schemas = {t: new.schema(t) for t in tables}
        self.screen_stack[0].query_one(CatalogTree).populate(release_names(new), new.name, tables, schemas)
        self.screen_stack[0].query_one("#catalog", CatalogPane).border_title = f"Release {new.name}"

    def on_results_table_object_chosen(self, event: ResultsTable.ObjectChosen) -> None:
        if self.screen is self.screen_stack[0]:
            self.open_object(event.object_id)
