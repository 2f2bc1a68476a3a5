"""Adaptive HEALPix partitioning of a catalog: the "sky chunks" of a release.

As hats-import does it: start from the 12 pixels of order 0 and split every pixel holding
more than ``max_rows`` rows into its 4 children, down to ``max_order``. The result is the
set of coarsest non-empty pixels holding at most ``max_rows`` rows each (pixels at
``max_order`` are kept whatever they hold), sorted by their order-29 range.

Also the sort keys shared by the release writer and the importer: ``_healpix_29`` computed
from positions, its stable argsort (numba radix sort) and rows-per-pixel counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cdshealpix import cdshealpix as _cdshealpix

from .._jit import njit

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


# --------------------------------------------------------------------------- sort keys


def healpix29(ra_deg, dec_deg) -> np.ndarray:
    """The ``_healpix_29`` column (nested HEALPix index at order 29, int64) of positions in
    degrees: the values of :func:`minidr.sky.healpix.healpix29` (RA wrapped into [0, 360),
    Dec clipped to [-90, 90], then cdshealpix), with cdshealpix's Rust kernel called directly,
    without the astropy Longitude/Latitude round trip of its Python wrapper (half the time)."""
    ra = np.asarray(ra_deg, dtype=np.float64) % 360.0
    dec = np.clip(np.asarray(dec_deg, dtype=np.float64), -90.0, 90.0)
    if ra.shape != dec.shape:
        raise ValueError("ra and dec must have the same shape")
    out = np.empty(ra.shape, dtype=np.uint64)
    if ra.size == 0:
        return out.view(np.int64)
    dx = np.empty(ra.shape, dtype=np.float64)
    dy = np.empty(ra.shape, dtype=np.float64)
    depth = np.broadcast_to(np.uint8(ORDER29), ra.shape)
    _cdshealpix.lonlat_to_healpix(depth, np.radians(ra), np.radians(dec), out, dx, dy, np.uint16(0))
    return out.view(np.int64)


_DIGIT = 11
_MASK = (1 << _DIGIT) - 1


@njit
def _radix_argsort(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stable LSD radix argsort (11-bit digits: the counts stay in L1 cache; only over the bits where ``keys`` differ)
    of non-negative int64 keys: (order, keys[order])."""
    n = keys.size
    idx = np.arange(n)
    out_keys = keys.copy()
    if n < 2:
        return idx, out_keys
    lo = out_keys.min()
    span = out_keys.max() - lo
    if span == 0:
        return idx, out_keys
    nbits = 0
    while nbits < 63 and (span >> nbits) > 0:
        nbits += 1
    k2 = np.empty(n, dtype=np.int64)
    i2 = np.empty(n, dtype=np.int64)
    count = np.empty(1 << _DIGIT, dtype=np.int64)
    shift = 0
    while shift < nbits:
        count[:] = 0
        for i in range(n):
            count[((out_keys[i] - lo) >> shift) & _MASK] += 1
        total = 0
        for d in range(1 << _DIGIT):
            c = count[d]
            count[d] = total
            total += c
        for i in range(n):
            d = ((out_keys[i] - lo) >> shift) & _MASK
            j = count[d]
            count[d] = j + 1
            k2[j] = out_keys[i]
            i2[j] = idx[i]
        out_keys, k2 = k2, out_keys
        idx, i2 = i2, idx
        shift += _DIGIT
    return idx, out_keys


def argsort_healpix(healpix29: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stable argsort of an int64 ``_healpix_29`` column (values >= 0): ``(order, sorted)``
    with ``sorted == healpix29[order]``; numba radix sort, several times faster than
    ``np.argsort(kind="stable")``."""
    h = np.ascontiguousarray(healpix29, dtype=np.int64)
    if h.size and h.min() < 0:
        raise ValueError("healpix29 values must be >= 0")
    return _radix_argsort(h)


@njit
def _count_pixels(keys29: np.ndarray, shift: int, block_shift: int, counts: np.ndarray, touched: np.ndarray,
                  overflow: np.ndarray) -> int:
    """Count every key in ``counts[k >> shift]`` (uint8): a count reaching 256 is reset to 1
    and the pixel appended to ``overflow`` (each entry stands for 255 rows; ``overflow``
    holds ``keys29.size // 255 + 1`` entries). Marks ``touched[k >> block_shift]``. Returns
    the number of overflow entries written."""
    m = 0
    for i in range(keys29.size):
        k = keys29[i]
        p = k >> shift
        c = counts[p]
        if c == 255:
            overflow[m] = p
            m += 1
            counts[p] = 1
        else:
            counts[p] = c + 1
        touched[k >> block_shift] = True
    return m


@njit
def _nonzero_in_blocks(counts: np.ndarray, blocks: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """(pixels, counts) of the non-zero entries of ``counts`` inside the given blocks of
    ``block`` entries (blocks ascending), without reading the others."""
    n = 0
    for b in blocks:
        for j in range(b * block, (b + 1) * block):
            if counts[j]:
                n += 1
    pix = np.empty(n, dtype=np.int64)
    cnt = np.empty(n, dtype=np.int64)
    n = 0
    for b in blocks:
        for j in range(b * block, (b + 1) * block):
            if counts[j]:
                pix[n] = j
                cnt[n] = counts[j]
                n += 1
    return pix, cnt


class PixelCounts:
    """Rows per HEALPix pixel at ``order`` (<= 12), counted batch by batch.

    A dense array of 12 * 4**order one-byte counts, allocated zeroed (at order 12, 201 MB of
    address space of which only the pages of the sky holding rows become resident), whose
    entries overflow every 255 rows into a list of pixels, and a map of which 4 KiB blocks
    (pixels of order - 6) were touched, so that reading the result visits only those.
    Counting a batch is one numba pass, no sort."""

    def __init__(self, order: int = 12):
        if not 0 <= order <= 12:
            raise ValueError("order must be within 0..12")
        self.order = order
        self.shift = 2 * (ORDER29 - order)
        block_order = max(0, order - 6)
        self.block = 4 ** (order - block_order)
        self.block_shift = 2 * (ORDER29 - block_order)
        self.counts = np.zeros(12 * 4**order, dtype=np.uint8)
        self.touched = np.zeros(12 * 4**block_order, dtype=np.bool_)
        self.overflow: list[np.ndarray] = []
        self.rows = 0

    def add(self, healpix29: np.ndarray) -> None:
        """Count the rows of a batch (``_healpix_29`` values, int64 in [0, 12*4**29))."""
        h = np.ascontiguousarray(healpix29, dtype=np.int64)
        if h.size:
            over = np.empty(h.size // 255 + 1, dtype=np.int64)
            m = _count_pixels(h, self.shift, self.block_shift, self.counts, self.touched, over)
            if m:
                self.overflow.append(over[:m].copy())
            self.rows += h.size

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(pixels, counts) of the non-empty pixels, pixels ascending (int64)."""
        pix, cnt = _nonzero_in_blocks(self.counts, np.flatnonzero(self.touched), self.block)
        if self.overflow:
            u, n = np.unique(np.concatenate(self.overflow), return_counts=True)
            cnt[np.searchsorted(pix, u)] += 255 * n
        return pix, cnt
