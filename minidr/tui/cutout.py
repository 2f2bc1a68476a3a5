"""A calibrated-exposure cutout drawn with half-block characters and an asinh stretch."""

from __future__ import annotations

import numpy as np
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget


def asinh_stretch(img: np.ndarray, soften: float = 3.0) -> np.ndarray:
    """Pixels -> [0, 1]: background (median) at 0, noise (MAD sigma) ``soften`` units into the
    asinh, the brightest pixel at 1. NaNs become 0."""
    a = np.asarray(img, dtype=np.float64)
    good = np.isfinite(a)
    if not good.any():
        return np.zeros(a.shape)
    med = float(np.median(a[good]))
    sigma = 1.4826 * float(np.median(np.abs(a[good] - med))) or float(np.std(a[good])) or 1.0
    v = np.where(good, (a - med) / (soften * sigma), 0.0)
    top = float(np.arcsinh(max(v.max(), 1e-6)))
    return np.clip(np.arcsinh(np.maximum(v, 0.0)) / top, 0.0, 1.0)


def cut(image: np.ndarray, x: float, y: float, half: int) -> np.ndarray:
    """The (2*half+1)^2 pixels around (x, y) (0-based, pixel centres at integers); outside
    the image is NaN. Row 0 is the lowest y (FITS orientation)."""
    xi, yi = int(round(x)), int(round(y))
    n = 2 * half + 1
    out = np.full((n, n), np.nan, dtype=np.float64)
    ny, nx = image.shape
    y0, x0 = yi - half, xi - half
    ys, xs = max(0, y0), max(0, x0)
    ye, xe = min(ny, y0 + n), min(nx, x0 + n)
    if ye > ys and xe > xs:
        out[ys - y0:ye - y0, xs - x0:xe - x0] = image[ys:ye, xs:xe]
    return out


def resample(values: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Nearest-neighbour resampling to (rows, cols)."""
    ny, nx = values.shape
    yi = np.minimum((np.arange(rows) * ny / rows).astype(int), ny - 1)
    xi = np.minimum((np.arange(cols) * nx / cols).astype(int), nx - 1)
    return values[np.ix_(yi, xi)]


def half_block_lines(levels: np.ndarray) -> list[list[tuple[str, Style]]]:
    """Rows of (char, style) from stretched levels (even number of rows, row 0 at the top):
    each character shows two pixels, the upper half ▀ in the foreground colour."""
    out = []
    grey = (levels * 255).round().astype(int)
    for r in range(0, grey.shape[0] - 1, 2):
        line = []
        for top, bottom in zip(grey[r], grey[r + 1]):
            line.append(("▀", Style(color=Color.from_rgb(top, top, top), bgcolor=Color.from_rgb(bottom, bottom, bottom))))
        out.append(line)
    return out


class CutoutView(Widget):
    """Shows a stretched cutout scaled to fit (square pixels: one column, half a row each)."""

    DEFAULT_CSS = "CutoutView { width: 1fr; height: 1fr; }"

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.levels: np.ndarray | None = None
        self._lines: tuple[int, list] | None = None

    def set_image(self, pixels: np.ndarray | None) -> None:
        """``pixels`` with row 0 at the lowest y; drawn with north-ish (high y) up."""
        self.levels = None if pixels is None else asinh_stretch(pixels)[::-1]
        self._lines: tuple[int, list] | None = None
        self.refresh()

    def render_line(self, y: int) -> Strip:
        if self.levels is None:
            return Strip.blank(self.size.width)
        side = max(2, min(self.size.width, 2 * self.size.height))
        side -= side % 2
        if y >= side // 2:
            return Strip.blank(self.size.width)
        if self._lines is None or self._lines[0] != side:
            self._lines = (side, half_block_lines(resample(self.levels, side, side)))
        row = self._lines[1][y]
        segments = [Segment(ch, st) for ch, st in row]
        return Strip(segments, side).extend_cell_length(self.size.width)
