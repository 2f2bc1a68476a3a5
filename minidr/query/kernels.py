"""Pure numba kernels of the query layer: arrays in, arrays out, angles in degrees.

* :func:`nearest_in_cells` -- the exact phase of ``Release.xmatch``: for each user position,
  the nearest catalogue row within a radius among the rows of a few HEALPix cells.

Only numpy, math, :mod:`minidr._jit` and the scalar kernels of :mod:`minidr.sky.kernels`.
"""

from __future__ import annotations

import math

import numpy as np

from minidr._jit import njit, prange
from minidr.sky.kernels import ang_sep_scalar

DEG = math.pi / 180.0
CHUNK = 2048  # user rows handed to one thread at a time (searches reuse the last position)


@njit
def lower_bound_from(a, value, hint):
    """First index ``t`` with ``a[t] >= value`` in the sorted array ``a``, found by galloping
    from ``hint`` (exponential steps towards ``value``, then bisection): O(log distance),
    so a search near the previous one costs a few comparisons."""
    n = a.shape[0]
    if n == 0:
        return 0
    if hint < 0:
        hint = 0
    elif hint >= n:
        hint = n - 1
    if a[hint] < value:  # answer in (hint, n]
        lo = hint
        step = 1
        hi = hint + 1
        while hi < n and a[hi] < value:
            lo = hi
            step *= 2
            hi = hint + step
        hi = min(hi, n)
    else:  # answer in [0, hint]
        hi = hint
        step = 1
        lo = hint - 1
        while lo >= 0 and a[lo] >= value:
            hi = lo
            step *= 2
            lo = hint - step
        lo = max(lo, -1)
    # invariant: a[lo] < value (or lo == -1), a[hi] >= value (or hi == n)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[mid] < value:
            lo = mid
        else:
            hi = mid
    return hi


@njit(parallel=True)
def nearest_in_cells(cat_cell, cat_ra, cat_dec, user_cells, user_ra, user_dec, radius):
    """Nearest catalogue row within ``radius`` [deg] of each user position [deg].

    ``cat_cell`` (sorted ascending) is the HEALPix cell of each catalogue row at some order;
    ``user_cells`` (m, k) are the cells to search for each user row (its own cell and its
    neighbours; -1 entries are skipped). Returns (index into the catalogue or -1, separation
    [deg] or NaN). Ties keep the lower catalogue index. The user rows should come sorted by
    cell: each thread takes runs of ``CHUNK`` consecutive rows and starts every search where
    the previous one ended, so the searches walk the catalogue forwards a few rows at a
    time instead of bisecting all of it (any order gives the same answer, only slower).
    """
    m = user_ra.shape[0]
    best = np.full(user_ra.shape[0], -1, dtype=np.int64)
    sep = np.full(user_ra.shape[0], np.nan)
    n = cat_cell.shape[0]
    sr = math.sin(0.5 * min(radius, 180.0) * DEG)
    lim = sr * sr
    nchunk = (m + CHUNK - 1) // CHUNK
    for ch in prange(nchunk):
        hint = 0
        for i in range(ch * CHUNK, min(m, (ch + 1) * CHUNK)):
            ra0 = user_ra[i]
            dec0 = user_dec[i]
            cd0 = math.cos(dec0 * DEG)
            bh = 2.0
            bi = -1
            for j in range(user_cells.shape[1]):
                c = user_cells[i, j]
                if c < 0:
                    continue
                t = lower_bound_from(cat_cell, c, hint)
                hint = t
                while t < n and cat_cell[t] == c:
                    dd = cat_dec[t] - dec0
                    if abs(dd) <= radius:  # cheap reject before any trig
                        sd = math.sin(0.5 * dd * DEG)
                        sa = math.sin(0.5 * (cat_ra[t] - ra0) * DEG)
                        h = sd * sd + math.cos(cat_dec[t] * DEG) * cd0 * sa * sa
                        if h <= lim and (h < bh or (h == bh and t < bi)):
                            bh = h
                            bi = t
                    t += 1
            if bi >= 0:
                best[i] = bi
                sep[i] = ang_sep_scalar(ra0, dec0, cat_ra[bi], cat_dec[bi])
    return best, sep


@njit
def mark_cells(cells, shift, mask):
    """Set ``mask[c >> shift]`` for every cell ``c >= 0`` of ``cells`` (any shape): the
    coarser cells that a set of cells touches, in one pass without temporaries."""
    flat = cells.ravel()
    for i in range(flat.shape[0]):
        c = flat[i]
        if c >= 0:
            mask[c >> shift] = True
