"""Pure numba kernels of the query layer: arrays in, arrays out, angles in degrees.

* :func:`nearest_in_cells` -- the exact phase of ``Release.xmatch``: for each user position,
  the nearest catalogue row within a radius among the rows of a few HEALPix cells;
* :func:`file_span` -- which partition files (sorted sky ranges) a row of cells touches.

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
def nearest_in_cells(cat_cell, cat_ra, cat_dec, offset, users, user_cells, user_ra, user_dec, radius,
                     best, best_h, sep):
    """Update, for the user rows ``users``, the nearest catalogue row within ``radius`` [deg]
    with the rows of one more piece of the catalogue (positions in degrees).

    ``cat_cell`` (sorted ascending) is the HEALPix cell of each catalogue row at some order;
    ``user_cells`` (m, k) are the cells to search for each user row (its own cell and its
    neighbours; -1 entries are skipped). ``best`` (index: ``offset`` + row in this piece, or
    -1), ``best_h`` (haversine of the separation, 2.0 when none yet) and ``sep`` [deg] hold
    the best so far and are updated in place; equal separations keep the lower index, so
    pieces given in any order give the same answer. ``users`` must not repeat (each thread
    writes its own rows); sorted by cell, the searches walk the catalogue forwards: each
    thread takes runs of ``CHUNK`` users and starts every search where the previous one
    ended, a few rows away, instead of bisecting the whole piece.
    """
    m = users.shape[0]
    n = cat_cell.shape[0]
    sr = math.sin(0.5 * min(radius, 180.0) * DEG)
    lim = sr * sr
    nchunk = (m + CHUNK - 1) // CHUNK
    for ch in prange(nchunk):
        hint = 0
        for ii in range(ch * CHUNK, min(m, (ch + 1) * CHUNK)):
            i = users[ii]
            ra0 = user_ra[i]
            dec0 = user_dec[i]
            cd0 = math.cos(dec0 * DEG)
            bh = best_h[i]
            bi = best[i]
            bt = -1
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
                        if h <= lim and (h < bh or (h == bh and offset + t < bi)):
                            bh = h
                            bi = offset + t
                            bt = t
                    t += 1
            if bt >= 0:
                best[i] = bi
                best_h[i] = bh
                sep[i] = ang_sep_scalar(ra0, dec0, cat_ra[bt], cat_dec[bt])


@njit
def file_span(cells, shift, flo, fhi):
    """For each row of ``cells`` (m, k; -1 entries skipped; HEALPix cells at order
    ``29 - shift / 2``): the first and last index of the files, given as sorted disjoint
    half-open order-29 ranges ``[flo, fhi)``, that its cells overlap (first > last: none)."""
    m = cells.shape[0]
    nf = flo.shape[0]
    first = np.full(m, nf, dtype=np.int64)
    last = np.full(m, -1, dtype=np.int64)
    for i in range(m):
        f0 = nf
        f1 = -1
        for j in range(cells.shape[1]):
            c = cells[i, j]
            if c < 0:
                continue
            a = np.searchsorted(fhi, c << shift, side="right")  # first file ending after the cell starts
            b = np.searchsorted(flo, (c + 1) << shift, side="left")  # files starting before it ends
            if b > a:
                f0 = min(f0, a)
                f1 = max(f1, b - 1)
        first[i] = f0
        last[i] = f1
    return first, last
