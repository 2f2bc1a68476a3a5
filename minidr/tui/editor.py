"""The SQL editor: a TextArea with SQL highlighting (when tree-sitter-sql is installed) and history."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import TextArea


def sql_language() -> str | None:
    """'sql' when TextArea can highlight SQL here, else None (plain text)."""
    try:
        from textual._tree_sitter import get_language

        return "sql" if get_language("sql") is not None else None
    except Exception:  # noqa: BLE001 - highlighting is optional
        return None


def statement_at(text: str, offset: int) -> str:
    """The ';'-separated statement of ``text`` around character ``offset`` (the whole text
    when there is one statement); empty statements are skipped."""
    parts, start = [], 0
    for i, ch in enumerate(text):
        if ch == ";":
            parts.append((start, i))
            start = i + 1
    parts.append((start, len(text)))
    parts = [(a, b) for a, b in parts if text[a:b].strip()]
    if not parts:
        return ""
    for a, b in parts:
        if offset <= b:
            return text[a:b].strip()
    return text[parts[-1][0]:parts[-1][1]].strip()


class SqlEditor(TextArea):
    """SQL text; ctrl+up / ctrl+down walk through the history of queries run."""

    BORDER_TITLE = "Query"
    BINDINGS = [
        Binding("ctrl+up", "history(-1)", "Older query", show=False),
        Binding("ctrl+down", "history(1)", "Newer query", show=False),
    ]

    def __init__(self, text: str = "", **kw) -> None:
        super().__init__(text, language=sql_language(), soft_wrap=False, tab_behavior="indent",
                         show_line_numbers=True, **kw)
        self.queries: list[str] = []
        self._pos = 0
        self._draft = text

    def remember(self, query: str) -> None:
        if query and (not self.queries or self.queries[-1] != query):
            self.queries.append(query)
        self._pos = len(self.queries)

    def action_history(self, step: int) -> None:
        if not self.queries:
            return
        if self._pos == len(self.queries):
            self._draft = self.text
        self._pos = max(0, min(len(self.queries), self._pos + step))
        self.load_text(self._draft if self._pos == len(self.queries) else self.queries[self._pos])
        self.move_cursor(self.document.end)

    def current_query(self) -> str:
        """The selection if any, else the statement under the cursor."""
        if self.selected_text.strip():
            return self.selected_text.strip().rstrip(";").strip()
        row, col = self.cursor_location
        lines = self.text.split("\n")
        offset = sum(len(ln) + 1 for ln in lines[:row]) + col
        return statement_at(self.text, offset)
