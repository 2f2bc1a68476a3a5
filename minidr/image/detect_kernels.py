"""Numba kernels of background estimation and detection: mesh statistics, bicubic mesh
interpolation, separable convolution, thresholding, connected-component labelling, disk
dilation and the persistence (multi-threshold) deblender.

Pure functions on arrays; arrays indexed ``[y, x]``, pixel centres at integers.
"""

from __future__ import annotations

import math

import numpy as np

from minidr._jit import njit, prange


# --- background -----------------------------------------------------------------------------


@njit
def _clipped_stats(v, clip, maxiter):
    """(median, mean, std) of v after iterative clipping at median +- clip * std.

    Each iteration is one pass over the values: sums within the current interval (mean,
    std) and a 512-bin histogram of them whose interpolated half-count point is the median (accurate to ~1/500 of the interval, i.e. ~0.01 std)."""
    n = v.shape[0]
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    ref = float(v[0])
    for t in range(n):
        d = float(v[t]) - ref
        s1 += d
        s2 += d * d
    s0 = float(n)
    mean = ref + s1 / s0
    std = math.sqrt(max(s2 / s0 - (s1 / s0) ** 2, 0.0))
    med = mean
    lo = -np.inf
    hi = np.inf
    nb = 512
    hist = np.zeros(nb, dtype=np.int64)
    for it in range(maxiter + 1):
        # median within [lo, hi] from a histogram spanning the current interval
        a = max(lo, mean - 5.0 * std)
        b = min(hi, mean + 5.0 * std)
        if not (b > a):
            break
        hist[:] = 0
        below = 0
        above = 0
        w = (b - a) / nb
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        for t in range(n):
            x = float(v[t])
            if x < lo or x > hi:
                continue
            d = x - ref
            s0 += 1.0
            s1 += d
            s2 += d * d
            if x < a:
                below += 1
            elif x > b:
                above += 1
            else:
                k = int((x - a) / w)
                if k >= nb:
                    k = nb - 1
                hist[k] += 1
        half = 0.5 * s0
        c = float(below)
        med = b
        for k in range(nb):
            if c + hist[k] >= half:
                med = a + w * (k + (half - c) / max(hist[k], 1))
                break
            c += hist[k]
        if s0 < 3:
            break
        mean = ref + s1 / s0
        std = math.sqrt(max(s2 / s0 - (s1 / s0) ** 2, 0.0) * s0 / (s0 - 1.0))
        if it == maxiter or std <= 0.0:
            break
        nlo = med - clip * std
        nhi = med + clip * std
        if abs(nlo - lo) < 1e-3 * std and abs(nhi - hi) < 1e-3 * std:
            break
        lo = nlo
        hi = nhi
    return med, mean, std


@njit(parallel=True)
def mesh_stats(image, mask, excl_bits, nmy, nmx, clip, maxiter, min_frac):
    """Clipped statistics of each cell of an ``nmy x nmx`` grid tiling the image (cell j
    spans rows ``floor(j ny / nmy)`` to ``floor((j+1) ny / nmy)``, likewise for columns).

    For each cell the good pixels (mask has none of ``excl_bits``, finite value) are
    clipped iteratively to ``median +- clip * std`` (:func:`_clipped_stats`, O(n) per
    iteration: sums for mean and std, a 512-bin histogram for the median). The level is the SExtractor mode estimate
    ``2.5 median - 1.5 mean`` unless ``|mean - median| > 0.3 std`` (crowded: the median).
    Returns (level, rms, valid) mesh arrays of shape ``(nmy, nmx)``; cells with fewer
    than ``min_frac`` of good pixels are not valid.
    """
    ny, nx = image.shape
    level = np.zeros((nmy, nmx), dtype=np.float64)
    rms = np.zeros((nmy, nmx), dtype=np.float64)
    valid = np.zeros((nmy, nmx), dtype=np.bool_)
    for k in prange(nmy * nmx):
        j = k // nmx
        i = k - j * nmx
        y0 = (j * ny) // nmy
        y1 = ((j + 1) * ny) // nmy
        x0 = (i * nx) // nmx
        x1 = ((i + 1) * nx) // nmx
        buf = np.empty((y1 - y0) * (x1 - x0), dtype=np.float32)
        cnt = 0
        for yy in range(y0, y1):
            for xx in range(x0, x1):
                if mask[yy, xx] & excl_bits:
                    continue
                v = image[yy, xx]
                if math.isfinite(v):
                    buf[cnt] = v
                    cnt += 1
        if cnt < max(8, min_frac * (y1 - y0) * (x1 - x0)):
            continue
        med, mean, std = _clipped_stats(buf[:cnt], clip, maxiter)
        if std > 0.0 and abs(mean - med) < 0.3 * std:
            level[j, i] = 2.5 * med - 1.5 * mean
        else:
            level[j, i] = med
        rms[j, i] = std
        valid[j, i] = True
    return level, rms, valid


@njit
def _cubic_weights(t):
    """Catmull-Rom (Keys a = -0.5) weights of the 4 nodes around fractional position t."""
    t2 = t * t
    t3 = t2 * t
    w0 = -0.5 * t3 + t2 - 0.5 * t
    w1 = 1.5 * t3 - 2.5 * t2 + 1.0
    w2 = -1.5 * t3 + 2.0 * t2 + 0.5 * t
    w3 = 0.5 * t3 - 0.5 * t2
    return w0, w1, w2, w3


@njit(parallel=True)
def interp_mesh(mesh_values, ny, nx, pad):
    """Bicubic (Catmull-Rom) interpolation of a mesh of cell values to a float32 (ny, nx)
    map. The mesh tiles the image in ``nmy - 2 pad`` x ``nmx - 2 pad`` equal cells plus
    ``pad`` extrapolated nodes on each side; node (j, i) sits at the centre of cell
    ``(j - pad, i - pad)``, i.e. row ``(j - pad + 0.5) * ny / (nmy - 2 pad) - 0.5``."""
    nmy, nmx = mesh_values.shape
    wy = ny / (nmy - 2 * pad)
    wx = nx / (nmx - 2 * pad)
    tmp = np.empty((nmy, nx), dtype=np.float64)
    for j in prange(nmy):
        for x in range(nx):
            t = (x + 0.5) / wx - 0.5 + pad
            i = int(math.floor(t))
            f = t - i
            w0, w1, w2, w3 = _cubic_weights(f)
            i0 = min(max(i - 1, 0), nmx - 1)
            i1 = min(max(i, 0), nmx - 1)
            i2 = min(max(i + 1, 0), nmx - 1)
            i3 = min(max(i + 2, 0), nmx - 1)
            tmp[j, x] = (w0 * mesh_values[j, i0] + w1 * mesh_values[j, i1]
                         + w2 * mesh_values[j, i2] + w3 * mesh_values[j, i3])
    out = np.empty((ny, nx), dtype=np.float32)
    for y in prange(ny):
        t = (y + 0.5) / wy - 0.5 + pad
        j = int(math.floor(t))
        f = t - j
        w0, w1, w2, w3 = _cubic_weights(f)
        j0 = min(max(j - 1, 0), nmy - 1)
        j1 = min(max(j, 0), nmy - 1)
        j2 = min(max(j + 1, 0), nmy - 1)
        j3 = min(max(j + 2, 0), nmy - 1)
        for x in range(nx):
            out[y, x] = (w0 * tmp[j0, x] + w1 * tmp[j1, x] + w2 * tmp[j2, x] + w3 * tmp[j3, x])
    return out


# --- convolution and thresholding -----------------------------------------------------------


@njit(parallel=True)
def subtract_and_clean(image, back, mask, excl_bits):
    """``image - back`` as float32, with non-finite pixels and pixels having any of
    ``excl_bits`` set to 0 (the background level)."""
    ny, nx = image.shape
    out = np.empty((ny, nx), dtype=np.float32)
    for y in prange(ny):
        for x in range(nx):
            v = image[y, x] - back[y, x]
            if (mask[y, x] & excl_bits) or not math.isfinite(v):
                v = 0.0
            out[y, x] = v
    return out


@njit(parallel=True)
def bin2(image):
    """2x2 mean of a float32 image (a last odd row/column is averaged on its own)."""
    ny, nx = image.shape
    my = (ny + 1) // 2
    mx = (nx + 1) // 2
    out = np.empty((my, mx), dtype=np.float32)
    for j in prange(my):
        for i in range(mx):
            acc = 0.0
            c = 0
            for yy in range(2 * j, min(2 * j + 2, ny)):
                for xx in range(2 * i, min(2 * i + 2, nx)):
                    acc += image[yy, xx]
                    c += 1
            out[j, i] = acc / c
    return out


@njit(parallel=True)
def mask_from_binned(mask, binned, bit):
    """``mask`` with ``bit`` set on every pixel whose 2x2 bin is True in ``binned``."""
    ny, nx = mask.shape
    out = np.empty((ny, nx), dtype=np.uint16)
    for y in prange(ny):
        for x in range(nx):
            m = mask[y, x]
            if binned[y // 2, x // 2]:
                m |= bit
            out[y, x] = m
    return out


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
