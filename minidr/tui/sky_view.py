"""The sky view: Objects per RA/Dec cell as a terminal map; Enter queries the cell."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Footer, Static

from ..errors import MinidrError
from ._format import one_line

CELL_DEG = 5.0
N_RA = int(360 / CELL_DEG)   # 72 columns
N_DEC = int(180 / CELL_DEG)  # 36 cells = 18 rows of half blocks
# a ramp readable on dark and light backgrounds (viridis-like)
RAMP = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]
# one colour per HEALPix order of the partition map (deeper orders: denser sky)
ORDER_COLORS = [(90, 90, 200), (40, 150, 220), (30, 180, 140), (120, 200, 60), (230, 190, 40), (240, 120, 40),
                (220, 50, 60), (200, 60, 170)]


def cell_centres() -> tuple[np.ndarray, np.ndarray]:
    """RA and Dec [deg] of the centres of the (N_DEC, N_RA) cells."""
    ra = (np.arange(N_RA) + 0.5) * CELL_DEG
    dec = (np.arange(N_DEC) + 0.5) * CELL_DEG - 90.0
    return np.broadcast_to(ra, (N_DEC, N_RA)), np.broadcast_to(dec[:, None], (N_DEC, N_RA))


def partition_grid(orders: np.ndarray, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, pixel) of the partition holding each cell's centre, -1 where none does."""
    from ..sky.healpix import healpix_index

    ra, dec = cell_centres()
    order = np.full((N_DEC, N_RA), -1, dtype=np.int64)
    pixel = np.full((N_DEC, N_RA), -1, dtype=np.int64)
    for k in sorted(set(orders.tolist())):
        pix = healpix_index(ra.ravel(), dec.ravel(), k).reshape(ra.shape)
        hit = np.isin(pix, pixels[orders == k]) & (order < 0)
        order[hit], pixel[hit] = k, pix[hit]
    return order, pixel


def partition_query(table: str, order: int, pixel: int) -> str:
    shift = 2 * (29 - order)
    return (f"SELECT *\nFROM {table}\n-- HEALPix partition Norder={order} Npix={pixel}\n"
            f"WHERE _healpix_29 >= {pixel << shift} AND _healpix_29 < {(pixel + 1) << shift}\nLIMIT 1000")


def density_sql(table: str, ra: str, dec: str) -> str:
    return (f'SELECT CAST(floor("{ra}" / {CELL_DEG}) AS INTEGER) AS i, '
            f'CAST(floor(("{dec}" + 90.0) / {CELL_DEG}) AS INTEGER) AS j, count(*) AS n '
            f'FROM "{table}" GROUP BY ALL')


def grid_from(table) -> np.ndarray:
    """(N_DEC, N_RA) counts from the rows (i, j, n) of :func:`density_sql`."""
    grid = np.zeros((N_DEC, N_RA), dtype=np.int64)
    i = np.clip(table.column("i").to_numpy(zero_copy_only=False), 0, N_RA - 1)
    j = np.clip(table.column("j").to_numpy(zero_copy_only=False), 0, N_DEC - 1)
    np.add.at(grid, (j, i), table.column("n").to_numpy(zero_copy_only=False))
    return grid


def ramp(level: float) -> Color:
    x = min(max(level, 0.0), 1.0) * (len(RAMP) - 1)
    k = min(int(x), len(RAMP) - 2)
    f = x - k
    a, b = RAMP[k], RAMP[k + 1]
    return Color.from_rgb(*(round(a[c] + f * (b[c] - a[c])) for c in range(3)))


def cell_query(table: str, ra: str, dec: str, i: int, j: int) -> str:
    ra0, ra1 = i * CELL_DEG, (i + 1) * CELL_DEG
    dec0, dec1 = j * CELL_DEG - 90.0, (j + 1) * CELL_DEG - 90.0
    return (f"SELECT *\nFROM {table}\nWHERE box({ra}, {dec}, {ra0:g}, {dec0:g}, {ra1:g}, {dec1:g})\nLIMIT 1000")


@dataclass(frozen=True)
class Cell:
    i: int  # RA cell (RA from i*5 deg)
    j: int  # Dec cell (Dec from j*5 - 90 deg)


class SkyMap(Widget, can_focus=True):
    """72×36 cells of 5°, RA increasing to the left (as on the sky), north up. Each character
    shows two Dec cells (▀ upper, background lower); the cursor cell is drawn in reverse."""

    DEFAULT_CSS = "SkyMap { width: 78; height: 20; }"
    BINDINGS = [
        Binding("left", "move(1, 0)", "RA+", show=False),
        Binding("right", "move(-1, 0)", "RA-", show=False),
        Binding("up", "move(0, 1)", "Dec+", show=False),
        Binding("down", "move(0, -1)", "Dec-", show=False),
        Binding("enter", "choose", "Query cell"),
        Binding("p", "toggle_mode", "Partitions/density"),
    ]
    mode: reactive[str] = reactive("density")
    cursor: reactive[Cell] = reactive(Cell(0, N_DEC // 2))

    class Chosen(Message):
        def __init__(self, cell: Cell) -> None:
            super().__init__()
            self.cell = cell

    class Moved(Message):
        def __init__(self, cell: Cell) -> None:
            super().__init__()
            self.cell = cell

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.grid: np.ndarray | None = None
        self.orders: np.ndarray | None = None  # partition order per cell, -1 outside

    def action_toggle_mode(self) -> None:
        if self.orders is not None:
            self.mode = "partitions" if self.mode == "density" else "density"

    def watch_mode(self, mode: str) -> None:
        self.post_message(self.Moved(self.cursor))
        self.refresh()

    def set_grid(self, grid: np.ndarray) -> None:
        self.grid = grid
        if grid.any():
            j, i = np.unravel_index(int(np.argmax(grid)), grid.shape)
            self.cursor = Cell(int(i), int(j))
        self.refresh()

    def watch_cursor(self, cell: Cell) -> None:
        self.post_message(self.Moved(cell))
        self.refresh()

    def action_move(self, di: int, dj: int) -> None:
        c = self.cursor
        self.cursor = Cell((c.i + di) % N_RA, min(max(c.j + dj, 0), N_DEC - 1))

    def action_choose(self) -> None:
        self.post_message(self.Chosen(self.cursor))

    def on_click(self, event) -> None:
        col, row = event.x - 1, event.y - 1
        if 0 <= col < N_RA and 0 <= row < N_DEC // 2:
            self.cursor = Cell(N_RA - 1 - col, N_DEC - 1 - 2 * row)

    def _color(self, i: int, j: int) -> Color | None:
        if self.mode == "partitions" and self.orders is not None:
            k = int(self.orders[j, i])
            return None if k < 0 else Color.from_rgb(*ORDER_COLORS[min(k, len(ORDER_COLORS) - 1)])
        n = int(self.grid[j, i]) if self.grid is not None else 0
        if n == 0:
            return None
        top = math.log10(max(int(self.grid.max()), 2))
        return ramp(math.log10(n) / top if top > 0 else 1.0)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        rule = Style(dim=True)
        if y == 0:
            return Strip([Segment("┌" + "─" * N_RA + "┐", rule)]).extend_cell_length(width)
        if y == N_DEC // 2 + 1:
            axis = "RA 360°" + "─" * (N_RA - 11) + "0°  "
            return Strip([Segment("└" + axis[:N_RA].ljust(N_RA, "─") + "┘", rule)]).extend_cell_length(width)
        if y > N_DEC // 2 + 1:
            return Strip.blank(width)
        r = y - 1  # map row, top = north
        j_top, j_bot = N_DEC - 1 - 2 * r, N_DEC - 2 - 2 * r
        dec_label = {0: "+90", 4: "+45", 9: "  0", 13: "-45", 17: "-90"}
        segs = [Segment("│", rule)]
        for col in range(N_RA):
            i = N_RA - 1 - col
            ct, cb = self._color(i, j_top), self._color(i, j_bot)
            cur_t = self.cursor == Cell(i, j_top)
            cur_b = self.cursor == Cell(i, j_bot)
            if cur_t or cur_b:
                segs.append(Segment("▀" if cur_t else "▄", Style(color="red", bgcolor=cb if cur_t else ct, bold=True)))
            elif ct is None and cb is None:
                segs.append(Segment("·" if (i % 6 == 0 and r % 3 == 0) else " ", rule))
            elif ct is not None:
                segs.append(Segment("▀", Style(color=ct, bgcolor=cb)))
            else:
                segs.append(Segment("▄", Style(color=cb)))
        segs.append(Segment("│", rule))
        segs.append(Segment(" " + dec_label.get(r, ""), rule))
        return Strip(segs).extend_cell_length(width)


class SkyScreen(Screen):
    """Coverage and density of a table, with the HEALPix partitions under the cursor."""

    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back")]

    def __init__(self, release, table: str = "Object") -> None:
        super().__init__()
        self.release = release
        self.table = table
        self.part_order: np.ndarray | None = None
        self.part_pixel: np.ndarray | None = None
        cat = release.catalogs[table]
        self.ra, self.dec = cat.ra, cat.dec

    def compose(self) -> ComposeResult:
        yield Static(Text(f"{self.table} per {CELL_DEG:g}° cell (log colour) · p: HEALPix partitions · "
                          "Enter queries", style="bold"), id="sky-title")
        yield SkyMap(id="sky-map")
        yield Static("counting…", id="sky-info")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(SkyMap).focus()
        self.on_mount_partitions()
        self.load()

    @work(thread=True, exclusive=True, group="sky", exit_on_error=False)
    def load(self) -> None:
        try:
            t = self.release.sql(density_sql(self.table, self.ra, self.dec), max_rows=N_RA * N_DEC + 10)
        except MinidrError as exc:
            self.app.call_from_thread(self._show, None, f"✗ {one_line(exc)}")
            return
        self.app.call_from_thread(self._show, grid_from(t), None)

    def _show(self, grid, error: str | None) -> None:
        if not self.is_attached:  # the user went back before the counts came
            return
        if error:
            self.query_one("#sky-info", Static).update(error)
        else:
            self.query_one(SkyMap).set_grid(grid)

    def on_mount_partitions(self) -> None:
        cat = self.release.catalogs[self.table]
        if cat.orders is not None:
            self.part_order, self.part_pixel = partition_grid(cat.orders, cat.pixels)
            self.query_one(SkyMap).orders = self.part_order

    def partition_of(self, cell: Cell) -> tuple[int, int] | None:
        """(order, pixel) of the table's HEALPix partition holding the cell's centre."""
        if self.part_order is None or self.part_order[cell.j, cell.i] < 0:
            return None
        return int(self.part_order[cell.j, cell.i]), int(self.part_pixel[cell.j, cell.i])

    def on_sky_map_moved(self, event: SkyMap.Moved) -> None:
        m = self.query_one(SkyMap)
        c = event.cell
        n = int(m.grid[c.j, c.i]) if m.grid is not None else 0
        total = int(m.grid.sum()) if m.grid is not None else 0
        part = self.partition_of(c)
        ptxt = f"Norder={part[0]} Npix={part[1]}" if part else "none"
        if m.mode == "partitions":
            ptxt += " (Enter queries it; colour = order: " + " ".join(
                str(k) for k in sorted(set(self.part_order[self.part_order >= 0].tolist()))) + ")"
        self.query_one("#sky-info", Static).update(Text.assemble(
            (f"RA {c.i * CELL_DEG:g}–{(c.i + 1) * CELL_DEG:g}°  Dec {c.j * CELL_DEG - 90:+g}–{(c.j + 1) * CELL_DEG - 90:+g}°  ", "bold"),
            (f"{n:,} of {total:,} rows  ", ""), (f"partition: {ptxt}", "dim")))

    def on_sky_map_chosen(self, event: SkyMap.Chosen) -> None:
        part = self.partition_of(event.cell)
        if self.query_one(SkyMap).mode == "partitions" and part is not None:
            self.dismiss(partition_query(self.table, *part))
        else:
            self.dismiss(cell_query(self.table, self.ra, self.dec, event.cell.i, event.cell.j))
