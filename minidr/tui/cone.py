"""The cone search form: RA/Dec (degrees or sexagesimal), radius (arcsec), table."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from ..errors import MinidrError
from ..sky.coords import parse_dec, parse_ra
from ._format import one_line


@dataclass(frozen=True)
class ConeQuery:
    ra: float
    dec: float
    radius_arcsec: float
    table: str


def parse_cone(ra: str, dec: str, radius: str, table: str, tables: list[str]) -> ConeQuery:
    """Check the form's fields; raises ValueError with a message for the user.

    A position pasted whole into the RA field (``10:12:45.3 +02:03:04`` or ``153.2 2.05``)
    with Dec left empty is split in two."""
    if not dec.strip() and len(ra.replace(",", " ").split()) == 2:
        ra, dec = ra.replace(",", " ").split()
    try:
        ra_deg = parse_ra(ra.strip())
    except (MinidrError, ValueError) as exc:
        raise ValueError(f"RA: {one_line(exc)}") from None
    try:
        dec_deg = parse_dec(dec.strip())
    except (MinidrError, ValueError) as exc:
        raise ValueError(f"Dec: {one_line(exc)}") from None
    try:
        r = float(radius)
    except ValueError:
        raise ValueError(f"radius: {radius!r} is not a number of arcsec") from None
    if not r > 0:
        raise ValueError("radius must be > 0 arcsec")
    names = {t.lower(): t for t in tables}
    if table.strip().lower() not in names:
        raise ValueError(f"table: {table!r} is not one of {', '.join(tables)}")
    return ConeQuery(ra_deg, dec_deg, r, names[table.strip().lower()])


class ConeScreen(ModalScreen[ConeQuery | None]):
    """Asks for a cone; dismisses with a :class:`ConeQuery` or None."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, tables: list[str], last: tuple[str, str, str, str] | None = None) -> None:
        super().__init__()
        self.tables = tables
        self.last = last or ("", "", "10", "Object" if "Object" in tables else tables[0])

    def compose(self) -> ComposeResult:
        ra, dec, r, table = self.last
        with Vertical(id="cone-box", classes="dialog"):
            yield Label("Cone search", classes="dialog-title")
            with Horizontal(classes="field"):
                yield Label("RA", classes="field-label")
                yield Input(ra, placeholder="deg or 10:12:45.3", id="cone-ra", compact=True)
            with Horizontal(classes="field"):
                yield Label("Dec", classes="field-label")
                yield Input(dec, placeholder="deg or +02:03:04", id="cone-dec", compact=True)
            with Horizontal(classes="field"):
                yield Label("radius″", classes="field-label")
                yield Input(r, placeholder="arcsec", id="cone-radius", compact=True)
            with Horizontal(classes="field"):
                yield Label("table", classes="field-label")
                yield Input(table, placeholder=", ".join(self.tables), id="cone-table", compact=True)
            yield Static("", id="cone-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Search", variant="primary", id="cone-go", compact=True)
                yield Button("Cancel", id="cone-cancel", compact=True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cone-go":
            self._submit()
        else:
            self.dismiss(None)

    def _submit(self) -> None:
        values = [self.query_one(f"#cone-{k}", Input).value for k in ("ra", "dec", "radius", "table")]
        try:
            q = parse_cone(*values, tables=self.tables)
        except ValueError as exc:
            self.query_one("#cone-error", Static).update(str(exc))
            return
        self.dismiss(q)
