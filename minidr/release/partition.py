"""Adaptive HEALPix partitioning of a catalog: the "sky chunks" of a release.

As hats-import does it: start from the 12 pixels of order 0 and split every pixel holding
more than ``max_rows`` rows into its 4 children, down to ``max_order``. The result is the
set of coarsest non-empty pixels holding at most ``max_rows`` rows each (pixels at
``max_order`` are kept whatever they hold), sorted by their order-29 range. Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ORDER29 = 29
NPIX29 = 12 * 4**ORDER29


@dataclass(frozen=True)
class Partition:
    """One sky chunk: HEALPix ``pixel`` at ``order`` (nested), holding the rows
    ``[start, stop)`` of the catalog sorted by ``_healpix_29``."""

    order: int
    pixel: int
    start: int
    stop: int

    @property
    def n_rows(self) -> int:
        return self.stop - self.start

    @property
    def dir(self) -> int:
        """The HATS ``Dir=`` number: ``(pixel // 10000) * 10000``."""
        return (self.pixel // 10_000) * 10_000

    def range29(self) -> tuple[int, int]:
        """Half-open range ``[lo, hi)`` of ``_healpix_29`` values inside this pixel."""
        shift = 2 * (ORDER29 - self.order)
        return self.pixel << shift, (self.pixel + 1) << shift


def _runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values, starts and stops of the runs of equal values in a sorted 1-D array."""
    if keys.size == 0:
        e = np.zeros(0, dtype=np.int64)
        return e, e, e
    cut = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    starts = np.concatenate(([0], cut))
    stops = np.concatenate((cut, [keys.size]))
    return keys[starts], starts, stops


def plan_partitions(healpix29: np.ndarray, max_rows: int, max_order: int = 12) -> list[Partition]:
    """Partition plan of a catalog from its sorted ``_healpix_29`` column.

    Parameters
    ----------
    healpix29 : 1-D int64 array, sorted ascending, values in ``[0, 12 * 4**29)``.
    max_rows : most rows per partition (> 0); only pixels at ``max_order`` may exceed it.
    max_order : deepest HEALPix order a pixel may be split to (0..29).

    Returns
    -------
    Partitions covering every row exactly once, in increasing order-29 range;
    ``start``/``stop`` index into ``healpix29``.
    """
    h = np.asarray(healpix29)
    if h.ndim != 1:
        raise ValueError("healpix29 must be a 1-D array")
    if h.size and not np.issubdtype(h.dtype, np.integer):
        raise ValueError(f"healpix29 must be integers, not {h.dtype}")
    h = h.astype(np.int64, copy=False)
    if int(max_rows) < 1:
        raise ValueError("max_rows must be >= 1")
    if not 0 <= int(max_order) <= ORDER29:
        raise ValueError("max_order must be within 0..29")
    if h.size == 0:
        return []
    if h[0] < 0 or h[-1] >= NPIX29:
        raise ValueError("healpix29 values must be within [0, 12*4**29)")
    if np.any(h[1:] < h[:-1]):
        raise ValueError("healpix29 must be sorted ascending")

    out: list[Partition] = []

    def split(order: int, lo: int, hi: int) -> None:
        shift = 2 * (ORDER29 - order)
        pixels, starts, stops = _runs(h[lo:hi] >> shift)
        for p, s, e in zip(pixels.tolist(), starts.tolist(), stops.tolist()):
            if e - s <= max_rows or order >= max_order:
                out.append(Partition(order, int(p), lo + s, lo + e))
            else:
                split(order + 1, lo + s, lo + e)

    split(0, 0, h.size)
    return out
