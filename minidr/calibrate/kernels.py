"""Numba kernels of the calibrate stage: offset/rotation voting and one-to-one matching.

Pure functions on arrays (numpy, numba, math and :mod:`minidr._jit` only). Units are
whatever the caller uses consistently (pixels for the vote, arcsec or pixels for matching).
"""

from __future__ import annotations

import math

import numpy as np

from minidr._jit import njit


@njit
def vote_offsets(sx, sy, rx, ry, cx, cy, thetas, scales, half_range, bin_size):
    """Vote over rotation, scale and offset between two point sets.

    For each trial ``k`` the reference points ``(rx, ry)`` are rotated by ``thetas[k]``
    [rad] and scaled by ``scales[k]`` about ``(cx, cy)``, and every pairwise offset ``source - rotated reference`` that falls
    within ``+-half_range`` (both axes) is binned in a 2D histogram of cell ``bin_size``.
    The score is the sum over 2x2 blocks of cells, so a peak narrower than a cell but split
    between cells still counts in full; among equal scores the block whose first cell holds
    most votes wins.

    Returns ``(k, dx, dy, votes)``: the best trial index, the vote-weighted offset of the
    best 2x2 block (same unit as the inputs) and its score. Ties keep the first (smallest k,
    then smallest iy, ix) so the result is deterministic.
    """
    nb = int(2.0 * half_range / bin_size) + 1
    hist = np.zeros((nb, nb), dtype=np.int32)
    best_hist = np.zeros((nb, nb), dtype=np.int32)
    best_k = -1
    best_ix = 0
    best_iy = 0
    best_votes = 0
    best_centre = 0
    ns = sx.shape[0]
    nr = rx.shape[0]
    for k in range(thetas.shape[0]):
        c = math.cos(thetas[k]) * scales[k]
        s = math.sin(thetas[k]) * scales[k]
        hist[:, :] = 0
        for j in range(nr):
            ux = rx[j] - cx
            uy = ry[j] - cy
            px = cx + c * ux - s * uy
            py = cy + s * ux + c * uy
            for i in range(ns):
                dx = sx[i] - px
                dy = sy[i] - py
                if abs(dx) >= half_range or abs(dy) >= half_range:
                    continue
                ix = int((dx + half_range) / bin_size)
                iy = int((dy + half_range) / bin_size)
                if ix < nb and iy < nb:
                    hist[iy, ix] += 1
        for iy in range(nb - 1):
            for ix in range(nb - 1):
                c0 = hist[iy, ix]
                v = c0 + hist[iy, ix + 1] + hist[iy + 1, ix] + hist[iy + 1, ix + 1]
                if v == 0:
                    continue
                if v > best_votes or (v == best_votes and c0 > best_centre):
                    best_votes = v
                    best_centre = c0
                    best_k = k
                    best_ix = ix
                    best_iy = iy
                    best_hist[:, :] = hist
    # vote-weighted centre of the best 2x2 block
    sw = 0.0
    swx = 0.0
    swy = 0.0
    for jy in range(best_iy, min(best_iy + 2, nb)):
        for jx in range(best_ix, min(best_ix + 2, nb)):
            w = float(best_hist[jy, jx])
            sw += w
            swx += w * ((jx + 0.5) * bin_size - half_range)
            swy += w * ((jy + 0.5) * bin_size - half_range)
    if sw > 0:
        dx = swx / sw
        dy = swy / sw
    else:
        dx = 0.0
        dy = 0.0
    return best_k, dx, dy, best_votes


@njit
def match_nearest(x1, y1, x2, y2, radius):
    """One-to-one nearest-neighbour matching of two point sets within ``radius``.

    Candidate pairs closer than ``radius`` are found through a grid of cell ``radius`` on
    set 2, sorted by distance (stable) and accepted greedily, so each point is used at
    most once and the closest pairs win. Returns ``(i1, i2, dist)`` sorted by ``i1``.
    """
    n1 = x1.shape[0]
    n2 = x2.shape[0]
    empty_i = np.zeros(0, dtype=np.int64)
    if n1 == 0 or n2 == 0 or not radius > 0:
        return empty_i, empty_i.copy(), np.zeros(0, dtype=np.float64)
    xmin = x2.min()
    ymin = y2.min()
    ncx = int((x2.max() - xmin) / radius) + 1
    ncy = int((y2.max() - ymin) / radius) + 1
    cell = np.empty(n2, dtype=np.int64)
    for j in range(n2):
        cell[j] = int((y2[j] - ymin) / radius) * ncx + int((x2[j] - xmin) / radius)
    order = np.argsort(cell, kind="mergesort")
    start = np.zeros(ncx * ncy + 1, dtype=np.int64)
    for j in range(n2):
        start[cell[j] + 1] += 1
    for c in range(ncx * ncy):
        start[c + 1] += start[c]
    r2 = radius * radius
    # pass 1: count candidate pairs, pass 2: fill them
    npairs = 0
    for p in range(2):
        if p == 1:
            pi = np.empty(npairs, dtype=np.int64)
            pj = np.empty(npairs, dtype=np.int64)
            pd = np.empty(npairs, dtype=np.float64)
        m = 0
        for i in range(n1):
            fx = (x1[i] - xmin) / radius
            fy = (y1[i] - ymin) / radius
            if not (fx > -2.0 and fy > -2.0 and fx < ncx + 1.0 and fy < ncy + 1.0):
                continue
            cx = int(math.floor(fx))
            cy = int(math.floor(fy))
            for gy in range(max(cy - 1, 0), min(cy + 2, ncy)):
                for gx in range(max(cx - 1, 0), min(cx + 2, ncx)):
                    c = gy * ncx + gx
                    for q in range(start[c], start[c + 1]):
                        j = order[q]
                        d2 = (x1[i] - x2[j]) ** 2 + (y1[i] - y2[j]) ** 2
                        if d2 < r2:
                            if p == 1:
                                pi[m] = i
                                pj[m] = j
                                pd[m] = math.sqrt(d2)
                            m += 1
        npairs = m
    srt = np.argsort(pd, kind="mergesort")
    used1 = np.zeros(n1, dtype=np.bool_)
    used2 = np.zeros(n2, dtype=np.bool_)
    keep = np.zeros(npairs, dtype=np.bool_)
    for q in range(npairs):
        k = srt[q]
        if not used1[pi[k]] and not used2[pj[k]]:
            used1[pi[k]] = True
            used2[pj[k]] = True
            keep[k] = True
    i1 = pi[keep]
    i2 = pj[keep]
    dd = pd[keep]
    o = np.argsort(i1, kind="mergesort")
    return i1[o], i2[o], dd[o]


@njit
def normal_equations(a, b):
    """``(a.T @ a, a.T @ b)`` for a design ``a`` (n, p) and right-hand sides ``b`` (n, q),
    accumulated in a fixed order so the result does not depend on BLAS threading."""
    n, p = a.shape
    q = b.shape[1]
    ata = np.zeros((p, p))
    atb = np.zeros((p, q))
    for i in range(n):
        for j in range(p):
            aij = a[i, j]
            for k in range(j, p):
                ata[j, k] += aij * a[i, k]
            for k in range(q):
                atb[j, k] += aij * b[i, k]
    for j in range(p):
        for k in range(j):
            ata[j, k] = ata[k, j]
    return ata, atb
