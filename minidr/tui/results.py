"""The results: a DataTable that pages lazily through an Arrow result, a status line and
errors shown in place on one line."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from ._format import cell_text, is_numeric, one_line, unit_of

PAGE = 200  # rows added to the DataTable at a time


class ResultsTable(DataTable):
    """A DataTable over an Arrow table: rows are added a page at a time as the user scrolls."""

    class ObjectChosen(Message):
        def __init__(self, object_id: int) -> None:
            super().__init__()
            self.object_id = object_id

    def __init__(self, **kw) -> None:
        super().__init__(cursor_type="cell", zebra_stripes=True, header_height=2, **kw)
        self.arrow: pa.Table | None = None
        self.loaded = 0
        self._numeric: list[bool] = []
        self._sorted: tuple[int, str] | None = None

    def show(self, table: pa.Table) -> None:
        self._sorted = None
        self.clear(columns=True)
        self.arrow = table
        self.loaded = 0
        self._numeric = [is_numeric(f) for f in table.schema]
        for f, num in zip(table.schema, self._numeric):
            unit = unit_of(f)
            label = Text(f.name + "\n" + (f"[{unit}]" if unit else ""), style="bold",
                         justify="right" if num else "left")
            self.add_column(label)  # no key: a join may repeat a column name
        self.load_more()

    def load_more(self) -> None:
        """Add the next page of rows (if any are left)."""
        if self.arrow is None or self.loaded >= self.arrow.num_rows:
            return
        page = self.arrow.slice(self.loaded, PAGE)
        cols = [page.column(i).to_pylist() for i in range(page.num_columns)]
        rows = []
        for r in range(page.num_rows):
            rows.append([Text(cell_text(c[r]), justify="right") if num else cell_text(c[r])
                         for c, num in zip(cols, self._numeric)])
        self.add_rows(rows)
        self.loaded += page.num_rows
        pane = self.parent
        if isinstance(pane, ResultsPane):
            pane.refresh_status()

    def _near_end(self) -> bool:
        return self.arrow is not None and self.loaded < self.arrow.num_rows

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._near_end() and new_value >= self.max_scroll_y - self.size.height:
            self.call_later(self.load_more)

    def on_data_table_cell_highlighted(self, event: DataTable.CellHighlighted) -> None:
        if self._near_end() and event.coordinate.row >= self.loaded - 20:
            self.load_more()

    def object_id_at(self, row: int) -> int | None:
        if self.arrow is None or row >= self.arrow.num_rows:
            return None
        names = {n.lower(): n for n in self.arrow.column_names}
        if "objectid" not in names:
            return None
        v = self.arrow.column(names["objectid"])[row].as_py()
        return None if v is None else int(v)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        """Click on a header: sort the whole result by that column (again: descending)."""
        if self.arrow is None or self.arrow.num_rows == 0:
            return
        event.stop()
        i = event.column_index
        order = "descending" if self._sorted == (i, "ascending") else "ascending"
        idx = pc.array_sort_indices(self.arrow.column(i), order=order, null_placement="at_end")
        meta = self.arrow.schema.metadata
        sorted_table = self.arrow.take(idx).replace_schema_metadata(meta)
        self.show(sorted_table)
        self._sorted = (i, order)
        pane = self.parent
        if isinstance(pane, ResultsPane):
            pane.sort_note = f"sorted by {self.arrow.column_names[i]} {'↑' if order == 'ascending' else '↓'}"
            pane.refresh_status()

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        oid = self.object_id_at(event.coordinate.row)
        if oid is not None:
            event.stop()
            self.post_message(self.ObjectChosen(oid))


class ResultsPane(Vertical):
    """Status line (rows, truncated, time, or the error) above the results table."""

    BORDER_TITLE = "Results"

    def __init__(self, show_timing: bool = True, **kw) -> None:
        super().__init__(**kw)
        self.show_timing = show_timing
        self.label = ""
        self.elapsed: float | None = None
        self.error: str | None = None
        self.running = False
        self.sort_note = ""

    def compose(self) -> ComposeResult:
        yield Static("Run a query (ctrl+j) or a cone search (F3).", id="results-status")
        yield ResultsTable(id="results-table")

    @property
    def table(self) -> ResultsTable:
        return self.query_one(ResultsTable)

    @property
    def arrow(self) -> pa.Table | None:
        return self.table.arrow

    def show_running(self, label: str) -> None:
        self.running, self.error = True, None
        self.label = label
        status = self.query_one("#results-status", Static)
        status.set_class(False, "error")
        status.update(Text.assemble(("running… ", "bold"), ("Esc cancels", "dim")))

    def show_table(self, table: pa.Table, label: str = "", elapsed: float | None = None) -> None:
        self.running, self.error = False, None
        self.label, self.elapsed = label, elapsed
        self.sort_note = ""
        self.table.show(table)
        self.refresh_status()

    def show_error(self, message: str) -> None:
        self.running = False
        self.error = one_line(message)
        status = self.query_one("#results-status", Static)
        status.set_class(True, "error")
        status.update(Text("✗ " + self.error))

    def refresh_status(self) -> None:
        t = self.arrow
        if t is None or self.running or self.error:
            return
        status = self.query_one("#results-status", Static)
        status.set_class(False, "error")
        n = t.num_rows
        text = Text()
        text.append(f"{n:,} row{'s' if n != 1 else ''}", style="bold")
        if (t.schema.metadata or {}).get(b"truncated") == b"true":
            text.append("  truncated", style="bold reverse")
            text.append(" at the row cap", style="dim")
        if self.table.loaded < n:
            text.append(f"  ({self.table.loaded:,} loaded)", style="dim")
        if self.show_timing and self.elapsed is not None:
            text.append(f"  {self.elapsed:.3f} s", style="dim")
        if self.label:
            text.append(f"  {self.label}", style="dim")
        if self.sort_note:
            text.append(f"  {self.sort_note}", style="dim")
        if any(name.lower() == "objectid" for name in t.column_names) and n:
            text.append("  Enter: object view", style="dim italic")
        status.update(text)
