"""Nested HEALPix indices (through cdshealpix): the sky chunks and the ``_healpix_29`` column."""

from __future__ import annotations

import astropy.units as u
import numpy as np
from cdshealpix import nested

ORDER_MAX = 29


def healpix_index(ra_deg, dec_deg, order: int = ORDER_MAX) -> np.ndarray:
    """Nested HEALPix index (int64) at ``order`` of positions in degrees."""
    ra = np.asarray(ra_deg, dtype=np.float64) % 360.0
    dec = np.clip(np.asarray(dec_deg, dtype=np.float64), -90.0, 90.0)
    if ra.size == 0:
        return np.zeros(0, dtype=np.int64)
    idx = nested.lonlat_to_healpix(ra * u.deg, dec * u.deg, order)
    return np.asarray(idx, dtype=np.int64)


def healpix29(ra_deg, dec_deg) -> np.ndarray:
    """The ``_healpix_29`` column: nested index at order 29 of each position."""
    return healpix_index(ra_deg, dec_deg, ORDER_MAX)


def degrade(index29, order: int) -> np.ndarray:
    """Index at a coarser ``order`` of order-29 indices (nested: a right shift)."""
    return np.asarray(index29, dtype=np.int64) >> (2 * (ORDER_MAX - order))


def pixel_range29(order: int, pixel) -> tuple[np.ndarray, np.ndarray]:
    """Half-open ``[lo, hi)`` range of order-29 indices covered by pixels at ``order``."""
    shift = 2 * (ORDER_MAX - order)
    p = np.asarray(pixel, dtype=np.int64)
    return p << shift, (p + 1) << shift
