"""The help pane (F1, or ? outside the editor): keys and the spatial SQL of a release."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = [
    ("ctrl+j / ctrl+enter", "run the query: the selection, or the statement under the cursor"),
    ("Esc", "cancel the running query"),
    ("F7", "SQL dialect: duckdb (default) → adql (SELECT TOP, CONTAINS...) → qserv"),
    ("ctrl+up / ctrl+down", "older / newer query of the history;  F8: the history list"),
    ("F2  F5  F6", "focus the editor / results / release browser;  F9: hide the browser"),
    ("Enter (browser)", "insert the column's name into the editor; open another release;  i: insert a table's name"),
    ("Enter (results)", "open the row's Object: stats, light curve, detections, cutout"),
    ("click a header", "sort the whole result by that column; again: descending"),
    ("Object view", "l light curve · d detections · c cutout · m magnitudes/flux · Esc back"),
    ("F3", "cone search: RA/Dec in deg or 10:12:45.3 +02:03:04, radius in arcsec"),
    ("F4", "sky map: Objects per 5° cell, p: HEALPix partitions; Enter queries the cell"),
    ("ctrl+e", "export the result to .csv .parquet .json .fits"),
    ("F1  ?", "this help;  ctrl+p: commands, e.g. a light or dark theme"),
    ("ctrl+q", "quit"),
]

FUNCTIONS = [
    ("ang_sep(ra1, dec1, ra2, dec2)", "separation [deg]"),
    ("cone(ra, dec, ra0, dec0, radius_deg)", "inside the circle"),
    ("box(ra, dec, ra_min, dec_min, ra_max, dec_max)", "inside; RA wraps at 0/360"),
    ("polygon(ra, dec, [ra1, dec1, ra2, dec2, ...])", "inside the polygon"),
    ("scisql_angSep, scisql_s2PtInCircle,", "Qserv forms of the above"),
    ("  scisql_s2PtInBox, scisql_s2PtInCPoly", ""),
    ("scisql_nanojanskyToAbMag(f)", "AB magnitude of a flux [nJy]"),
    ("scisql_nanojanskyToAbMagSigma(f, fErr)", "its error"),
]

EXAMPLE = """SELECT objectId, coord_ra, coord_dec, r_psfMag
FROM Object
WHERE cone(coord_ra, coord_dec, 10.0, 2.0, 0.1)
ORDER BY r_psfMag LIMIT 20"""


def _table(rows, key_style: str) -> Table:
    t = Table(box=None, show_header=False, padding=(0, 1), expand=True)
    t.add_column(style=key_style, no_wrap=True)
    t.add_column(ratio=1)
    for k, v in rows:
        t.add_row(k, v)
    return t


def help_renderable() -> Group:
    return Group(
        Text("Keys", style="bold underline"),
        _table(KEYS, "bold"),
        Text(""),
        Text("Tables", style="bold underline"),
        Text("Object, Source, ForcedSource, Visit, CcdVisit: positions in deg, fluxes in nJy, "
             "<b>_psfMag in AB. Results stop at the row cap (query.max_rows) and the status line "
             "then says truncated; each query has a time limit (query.timeout). Read-only."),
        Text(""),
        Text("Spatial SQL (DuckDB dialect)", style="bold underline"),
        _table(FUNCTIONS, "bold cyan"),
        Text("A WHERE that limits the sky reads only the partitions that overlap it.", style="italic"),
        Text(""),
        Text(EXAMPLE, style="cyan"),
    )


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(help_renderable())
