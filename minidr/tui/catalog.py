"""The release browser: releases, their tables (row counts) and columns (type, unit, description)."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static, Tree

from ._format import description_of, short_type, unit_of


@dataclass(frozen=True)
class Node:
    kind: str  # "release" | "table" | "column"
    release: str
    table: str | None = None
    column: str | None = None
    description: str = ""


class CatalogTree(Tree[Node]):
    """Releases -> tables -> columns. Enter on a column inserts its name into the editor."""

    BORDER_TITLE = "Release"
    BINDINGS = [Binding("i", "insert_name", "Insert name", show=False)]

    class ColumnChosen(Message):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    class ReleaseChosen(Message):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    def __init__(self, releases: list[str], current: str, tables: dict[str, int],
                 schemas: dict[str, pa.Schema], **kw) -> None:
        super().__init__("releases", data=None, **kw)
        self.show_root = False
        self.guide_depth = 2
        self.populate(releases, current, tables, schemas)

    def populate(self, releases, current, tables, schemas) -> None:
        self.clear()
        for name in releases:
            label = Text(name, style="bold")
            if name == current:
                label.append("  current", style="dim")
            rnode = self.root.add(label, data=Node("release", name), expand=name == current)
            if name != current:
                rnode.allow_expand = False
                continue
            for table, rows in tables.items():
                tl = Text(table, style="bold")
                tl.append(f"  {rows:,}", style="dim")
                tnode = rnode.add(tl, data=Node("table", name, table, description=f"{table}: {rows:,} rows"))
                for f in schemas[table]:
                    unit = unit_of(f)
                    cl = Text(f.name)
                    cl.append(f" {short_type(f.type)}", style="dim")
                    if unit:
                        cl.append(f" {unit}", style="italic dim")
                    desc = description_of(f)
                    info = f"{table}.{f.name} ({f.type}{', ' + unit if unit else ''})" + (f": {desc}" if desc else "")
                    tnode.add_leaf(cl, data=Node("column", name, table, f.name, info))

    def action_insert_name(self) -> None:
        """i: insert the highlighted table's or column's name into the editor."""
        node = self.cursor_node.data if self.cursor_node is not None else None
        if node is not None and node.kind in ("table", "column"):
            self.post_message(self.ColumnChosen(node.column or node.table))

    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        node = event.node.data
        if node is None:
            return
        if node.kind == "column":
            event.stop()
            self.post_message(self.ColumnChosen(node.column))
        elif node.kind == "release" and not event.node.allow_expand:
            event.stop()
            self.post_message(self.ReleaseChosen(node.release))


class CatalogPane(Vertical):
    """The tree and, below it, the description of the highlighted node."""

    def __init__(self, releases, current, tables, schemas, **kw) -> None:
        super().__init__(**kw)
        self._args = (releases, current, tables, schemas)

    def compose(self) -> ComposeResult:
        yield CatalogTree(*self._args, id="catalog-tree")
        yield Static("Enter on a column inserts its name", id="catalog-info")

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        node = event.node.data
        if node is None:
            return
        if node.kind == "release":
            text = f"release {node.release}" + ("" if event.node.allow_expand else ": Enter opens it")
        else:
            text = node.description
        self.query_one("#catalog-info", Static).update(Text(text))
