"""Numba kernels of detection: cleaning masked pixels, separable convolution, thresholding,
connected-component labelling, disk dilation and the persistence (multi-threshold)
deblender. The background's kernels are in :mod:`minidr.image.background_kernels`.

Pure functions on arrays; arrays indexed ``[y, x]``, pixel centres at integers.
"""

from __future__ import annotations

import math

import numpy as np

from minidr._jit import njit, prange


@njit(parallel=True)
def clean_image(image, mask, excl_bits):
    """A float32 copy with non-finite pixels and pixels having any of ``excl_bits`` set to 0."""
    ny, nx = image.shape
    out = np.empty((ny, nx), dtype=np.float32)
    for y in prange(ny):
        for x in range(nx):
            v = image[y, x]
            if (mask[y, x] & excl_bits) or not math.isfinite(v):
                v = 0.0
            out[y, x] = v
    return out


@njit(parallel=True)
def convolve_separable(image, k):
    """Convolve a float32 image with the separable kernel ``k[:, None] * k[None, :]``
    (odd length); outside the image counts as 0. Returns float32."""
    ny, nx = image.shape
    h = k.shape[0] // 2
    tmp = np.empty((ny, nx), dtype=np.float32)
    for y in prange(ny):
        for x in range(nx):
            acc = 0.0
            lo = max(0, h - x)
            hi = min(2 * h + 1, nx - x + h)
            for j in range(lo, hi):
                acc += k[j] * image[y, x + j - h]
            tmp[y, x] = acc
    out = np.empty((ny, nx), dtype=np.float32)
    for y in prange(ny):
        row = np.zeros(nx, dtype=np.float64)
        for j in range(2 * h + 1):
            yy = y + j - h
            if yy < 0 or yy >= ny:
                continue
            kj = k[j]
            for x in range(nx):
                row[x] += kj * tmp[yy, x]
        for x in range(nx):
            out[y, x] = row[x]
    return out


@njit(parallel=True)
def threshold_map(smoothed, rms, factor):
    """Boolean map ``smoothed > factor * rms`` (rms a per-pixel map)."""
    ny, nx = smoothed.shape
    out = np.empty((ny, nx), dtype=np.bool_)
    for y in prange(ny):
        for x in range(nx):
            out[y, x] = smoothed[y, x] > factor * rms[y, x]
    return out


# --- labelling --------------------------------------------------------------------------------


@njit
def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit
def label8(binary):
    """8-connected components of a boolean image: (labels int32 with 1..n, n).

    Two-pass union-find; labels are numbered in raster order of their first pixel."""
    ny, nx = binary.shape
    labels = np.zeros((ny, nx), dtype=np.int32)
    parent = np.zeros(ny * nx // 2 + 2, dtype=np.int32)
    nxt = 1
    for y in range(ny):
        for x in range(nx):
            if not binary[y, x]:
                continue
            best = 0
            for dy, dx in ((-1, -1), (-1, 0), (-1, 1), (0, -1)):
                yy = y + dy
                xx = x + dx
                if yy < 0 or xx < 0 or xx >= nx:
                    continue
                l = labels[yy, xx]
                if l == 0:
                    continue
                r = _find(parent, l)
                if best == 0:
                    best = r
                elif r != best:
                    if r < best:
                        parent[best] = r
                        best = r
                    else:
                        parent[r] = best
            if best == 0:
                if nxt >= parent.shape[0]:
                    newp = np.zeros(parent.shape[0] * 2, dtype=np.int32)
                    newp[: parent.shape[0]] = parent
                    parent = newp
                parent[nxt] = nxt
                labels[y, x] = nxt
                nxt += 1
            else:
                labels[y, x] = best
    # compact numbering
    remap = np.zeros(nxt, dtype=np.int32)
    n = 0
    for i in range(1, nxt):
        r = _find(parent, i)
        if r == i:
            n += 1
            remap[i] = n
    for i in range(1, nxt):
        remap[i] = remap[_find(parent, i)]
    for y in range(ny):
        for x in range(nx):
            l = labels[y, x]
            if l:
                labels[y, x] = remap[l]
    return labels, n


@njit
def label_stats(labels, n, values):
    """Per label 1..n: pixel count, sum of values, and (y, x) and value of the maximum."""
    ny, nx = labels.shape
    npix = np.zeros(n + 1, dtype=np.int64)
    tot = np.zeros(n + 1, dtype=np.float64)
    pmax = np.full(n + 1, -np.inf)
    py = np.zeros(n + 1, dtype=np.int64)
    px = np.zeros(n + 1, dtype=np.int64)
    for y in range(ny):
        for x in range(nx):
            l = labels[y, x]
            if l == 0:
                continue
            v = values[y, x]
            npix[l] += 1
            tot[l] += v
            if v > pmax[l]:
                pmax[l] = v
                py[l] = y
                px[l] = x
    return npix, tot, pmax, py, px


@njit(parallel=True)
def keep_labels(labels, keep):
    """Boolean image of the pixels whose label l has ``keep[l]``."""
    ny, nx = labels.shape
    out = np.zeros((ny, nx), dtype=np.bool_)
    for y in prange(ny):
        for x in range(nx):
            l = labels[y, x]
            if l and keep[l]:
                out[y, x] = True
    return out


@njit(parallel=True)
def dilate_disk(binary, r):
    """Dilate a boolean image by a disk of radius r [pixels] (pixel centres within r)."""
    ny, nx = binary.shape
    big = r + 1
    h = np.empty((ny, nx), dtype=np.int32)
    for y in prange(ny):
        d = big
        for x in range(nx):
            if binary[y, x]:
                d = 0
            elif d < big:
                d += 1
            h[y, x] = d
        d = big
        for x in range(nx - 1, -1, -1):
            if binary[y, x]:
                d = 0
            elif d < big:
                d += 1
            if d < h[y, x]:
                h[y, x] = d
    out = np.zeros((ny, nx), dtype=np.bool_)
    r2 = r * r
    for y in prange(ny):
        for x in range(nx):
            for dy in range(-r, r + 1):
                yy = y + dy
                if yy < 0 or yy >= ny:
                    continue
                hv = h[yy, x]
                if hv <= r and hv * hv + dy * dy <= r2:
                    out[y, x] = True
                    break
    return out


# --- deblending ---------------------------------------------------------------------------------


@njit
def persistence_peaks(smoothed, labels, order, total, variance, rms, knorm, nsig, contrast):
    """Significant peaks of each footprint by a continuous multi-threshold tree.

    Footprint pixels (``labels > 0``) are visited in decreasing ``smoothed`` value
    (``order``: flat indices). Connected branches grow by union-find; when two or more
    branches meet at level s, each branch whose peak is not the highest becomes a separate
    child if its prominence (peak - s) is at least ``nsig`` times the smoothed noise at the
    peak, ``knorm * sqrt(max(variance, rms^2))``, and its flux
    (sum of smoothed values in the branch) at least ``contrast * total[label]``; either
    way it then merges into the highest branch. The highest peak of each footprint is
    always kept. Returns the flat indices of the kept peaks (in decreasing height).
    """
    ny, nx = smoothed.shape
    m = order.shape[0]
    rank = np.full(ny * nx, -1, dtype=np.int32)
    parent = np.empty(m, dtype=np.int32)
    flux = np.empty(m, dtype=np.float64)
    keep = np.zeros(m, dtype=np.bool_)
    roots = np.empty(8, dtype=np.int32)
    for k in range(m):
        p = order[k]
        y = p // nx
        x = p - y * nx
        rank[p] = k
        parent[k] = k
        flux[k] = smoothed[y, x]
        nr = 0
        for dy in (-1, 0, 1):
            yy = y + dy
            if yy < 0 or yy >= ny:
                continue
            for dx in (-1, 0, 1):
                if dy == 0 and dx == 0:
                    continue
                xx = x + dx
                if xx < 0 or xx >= nx:
                    continue
                q = rank[yy * nx + xx]
                if q < 0:
                    continue
                r = _find(parent, q)
                dup = False
                for t in range(nr):
                    if roots[t] == r:
                        dup = True
                        break
                if not dup:
                    roots[nr] = r
                    nr += 1
        if nr == 0:
            continue
        win = roots[0]
        for t in range(1, nr):
            if roots[t] < win:
                win = roots[t]
        level = smoothed[y, x]
        lab = labels[y, x]
        for t in range(nr):
            r = roots[t]
            if r == win:
                continue
            pr = order[r]
            py = pr // nx
            px = pr - py * nx
            prom = smoothed[py, px] - level
            sig = knorm * math.sqrt(max(variance[py, px], rms[py, px] * rms[py, px]))
            if prom >= nsig * sig and (flux[r] >= contrast * total[lab] or prom >= 2.0 * nsig * sig):
                keep[r] = True
            parent[r] = win
            flux[win] += flux[r]
        parent[k] = win
        flux[win] += flux[k]
    nk = 0
    for k in range(m):
        if parent[k] == k:
            keep[k] = True
        if keep[k]:
            nk += 1
    out = np.empty(nk, dtype=np.int64)
    j = 0
    for k in range(m):
        if keep[k]:
            out[j] = order[k]
            j += 1
    return out
