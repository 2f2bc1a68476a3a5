"""The export dialog (ctrl+e): a path; the format follows its extension."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from ..query.formats import render

EXTENSIONS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".json": "json", ".fits": "fits",
              ".fit": "fits", ".txt": "table"}


def export_table(table: pa.Table, path: str | Path) -> tuple[Path, str]:
    """Write ``table`` to ``path`` in the format of its extension (csv when unknown)."""
    path = Path(path).expanduser()
    fmt = EXTENSIONS.get(path.suffix.lower(), "csv")
    data = render(table, fmt)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path, fmt


class ExportScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, rows: int, default: str = "result.csv") -> None:
        super().__init__()
        self.rows, self.default = rows, default

    def compose(self) -> ComposeResult:
        with Vertical(id="export-box", classes="dialog"):
            yield Label(f"Export {self.rows:,} rows to", classes="dialog-title")
            yield Input(self.default, id="export-path", compact=True)
            yield Static(".csv .parquet .json .fits · Enter writes · Esc cancels", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)
