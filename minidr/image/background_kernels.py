"""Numba kernels of the sky background: clipped mesh statistics from one histogram per cell,
the first-pass source mask (on a 2x2-binned residual) and bicubic mesh interpolation.

Pure functions on arrays; arrays indexed ``[y, x]``, pixel centres at integers. Image values
in whatever unit the caller uses (minidr: e-/pixel); the statistics come back in that unit.
"""

from __future__ import annotations

import math

import numpy as np

from minidr._jit import njit, prange

#: histogram bins per mesh cell: over +-5 sigma a bin is ~0.01 sigma wide
NBINS = 512


# --- mesh statistics ------------------------------------------------------------------------


@njit
def _good(image, mask, excl_bits, det, use_det, yy, xx):
    """Pixel value as float64, or NaN if it is masked (``excl_bits``, ``det``) or not finite."""
    if excl_bits and (mask[yy, xx] & excl_bits):
        return np.nan
    if use_det and det[yy >> 1, xx >> 1]:
        return np.nan
    return float(image[yy, xx])


@njit
def _cell_hist(image, mask, excl_bits, det, use_det, y0, y1, x0, x1, a, w, hist):
    """Histogram of the good pixels of one cell in ``[a, a + w * len(hist))``; returns the
    numbers of good pixels below and above that range."""
    nb = hist.shape[0]
    hist[:] = 0
    below = 0
    above = 0
    a32 = np.float32(a)
    inv32 = np.float32(1.0 / w)
    nbf = np.float32(nb)
    zero = np.float32(0.0)
    if not excl_bits and not use_det:
        # no mask: a tight loop over row views (float32 arithmetic, NaN in no branch)
        for yy in range(y0, y1):
            row = image[yy, x0:x1]
            for x in range(x1 - x0):
                t = (np.float32(row[x]) - a32) * inv32
                if t >= zero and t < nbf:
                    hist[np.int64(t)] += 1
                elif t < zero:
                    below += 1
                elif t >= nbf:
                    above += 1
        return below, above
    for yy in range(y0, y1):
        row = image[yy]
        for xx in range(x0, x1):
            if excl_bits and (mask[yy, xx] & excl_bits):
                continue
            if use_det and det[yy >> 1, xx >> 1]:
                continue
            t = (np.float32(row[xx]) - a32) * inv32
            if t >= zero and t < nbf:
                hist[np.int64(t)] += 1
            elif t < zero:
                below += 1
            elif t >= nbf:
                above += 1
    return below, above


@njit
def _hist_stats(hist, a, w, klo, khi, below, above):
    """(count, mean, std, median) of the histogram bins ``klo..khi`` (inclusive), values at
    the bin centres; the median interpolated within its bin. ``below`` and ``above`` good
    values lie outside the histogram and count for the median only (0 once clipped).
    Integer sums (exact, and they vectorise)."""
    s0 = np.int64(0)
    s1 = np.int64(0)
    s2 = np.int64(0)
    for k in range(klo, khi + 1):
        c = np.int64(hist[k])
        s0 += c
        s1 += c * k
        s2 += c * k * k
    if s0 < 1:
        return 0.0, a, 0.0, a
    n0 = float(s0)
    mean = s1 / n0
    var = max(s2 / n0 - mean * mean, 0.0)
    std = math.sqrt(var * n0 / (n0 - 1.0)) if s0 > 1 else 0.0
    # median: the first bin where the running count reaches half of all (integer search)
    twice_half = s0 + below + above
    cum = np.int64(below)
    k = klo
    while k < khi and 2 * (cum + hist[k]) < twice_half:
        cum += hist[k]
        k += 1
    c = float(hist[k])
    med = k + (0.5 * twice_half - cum) / max(c, 1.0)
    return n0, a + w * (mean + 0.5), w * std, a + w * med


@njit
def _sample_range(image, mask, excl_bits, det, use_det, y0, y1, x0, x1, buf):
    """Median and 1.4826 MAD of a sparse sample of one cell's good pixels (every 4th pixel
    of 4 rows, up to ``len(buf)``): where to put the cell's histogram. (nan, nan) if fewer
    than 16 good pixels were sampled."""
    m = 0
    dy = max(1, (y1 - y0) // 4)
    for yy in range(y0 + dy // 2, y1, dy):
        for xx in range(x0 + 1, x1, 4):
            if m >= buf.shape[0]:
                break
            v = _good(image, mask, excl_bits, det, use_det, yy, xx)
            if math.isfinite(v):
                buf[m] = v
                m += 1
    if m < 16:
        return np.nan, np.nan
    srt = np.sort(buf[:m])
    med = 0.5 * (srt[(m - 1) // 2] + srt[m // 2])
    for t in range(m):
        buf[t] = abs(srt[t] - med)
    dev = np.sort(buf[:m])
    return med, 1.4826 * 0.5 * (dev[(m - 1) // 2] + dev[m // 2])


@njit
def _cell_sums(image, mask, excl_bits, det, use_det, y0, y1, x0, x1):
    """(n, mean, std) of the good pixels of one cell (std 0 for fewer than 2)."""
    n = 0
    ref = 0.0
    s1 = 0.0
    s2 = 0.0
    for yy in range(y0, y1):
        for xx in range(x0, x1):
            v = _good(image, mask, excl_bits, det, use_det, yy, xx)
            if not math.isfinite(v):
                continue
            if n == 0:
                ref = v
            d = v - ref
            s1 += d
            s2 += d * d
            n += 1
    if n == 0:
        return 0, np.nan, 0.0
    mean = ref + s1 / n
    if n < 2:
        return n, mean, 0.0
    return n, mean, math.sqrt(max(s2 / n - (s1 / n) ** 2, 0.0) * n / (n - 1.0))


@njit
def _clip_on_hist(hist, a, w, below, above, clip, maxiter, image, mask, excl_bits, det, use_det,
                  y0, y1, x0, x1):
    """Iterative clipping of one cell to ``median +- clip * std`` on its histogram; the first
    median counts every good pixel, the first std is that of the histogram (the pixels
    within its range). The pixels are histogrammed again (at most twice) over
    ``median +- 5 std`` when the clipped range spans under a quarter of the bins or reaches
    past the histogram. Returns (median, mean, std, a, w, below, above), the last four
    describing the final histogram."""
    nb = hist.shape[0]
    _c, mean, std, med = _hist_stats(hist, a, w, 0, nb - 1, below, above)
    if not (std > 0.0):
        return med, mean, std, a, w, below, above
    rebuilt = 0
    lo = -np.inf
    hi = np.inf
    plo = -1
    phi = -1
    for _it in range(maxiter):
        nlo = med - clip * std
        nhi = med + clip * std
        if abs(nlo - lo) < 1e-3 * std and abs(nhi - hi) < 1e-3 * std:
            break
        lo = nlo
        hi = nhi
        narrow = (hi - lo) < 0.25 * w * nb
        wide = (lo < a and below > 0) or (hi > a + w * nb and above > 0)
        if (narrow or wide) and rebuilt < 2:
            a = med - 5.0 * std
            w = 10.0 * std / nb
            below, above = _cell_hist(image, mask, excl_bits, det, use_det, y0, y1, x0, x1, a, w, hist)
            rebuilt += 1
            plo = -1
        klo = max(0, math.ceil((lo - a) / w - 0.5))
        khi = min(nb - 1, math.floor((hi - a) / w - 0.5))
        if khi < klo or (klo == plo and khi == phi):
            break  # nothing left, or the same bins as the last iteration: converged
        plo = klo
        phi = khi
        cnt, m, sd, md = _hist_stats(hist, a, w, klo, khi, 0, 0)
        if cnt < 3 or not (sd > 0.0):
            break
        mean = m
        med = md
        std = sd
    return med, mean, std, a, w, below, above


@njit
def _level(med, mean, std, mean_level):
    """Level of a cell from its clipped median, mean and std.

    ``mean_level`` (the second pass, sources masked): the clipped mean, as LSST's background
    (``MEANCLIP`` over pixels without ``DETECTED``): PSF photometry subtracts the sky's
    mean, and photon noise is skewed (third moment = mean), so a mode estimate sits
    ``~2.5 * sky / (6 * (sky + rn^2))`` ~ 0.4 e- below it whatever the sky level (a
    +0.14 sigma flux bias of faint g stars on the sample). Without a source mask (first
    pass) SExtractor's mode estimate ``2.5 median - 1.5 mean``, robust to the sources' wings.
    Either way the median where the distribution is too skewed for it
    (``|mean - median| > 0.3 std``: crowded)."""
    if std > 0.0 and abs(mean - med) < 0.3 * std:
        return mean if mean_level else 2.5 * med - 1.5 * mean
    return med


@njit
def _cell(image, mask, excl_bits, det, use_det, y0, y1, x0, x1, clip, maxiter, min_frac, hist, st,
          have_hist, buf, mean_level):
    """Statistics of one cell: (valid, level, rms). With ``have_hist`` the histogram
    ``hist`` and its state ``st`` = (a, w, below, above) are already those of the cell's
    good pixels; otherwise they are built here (``w`` 0 in ``st`` afterwards: a constant
    cell, no histogram)."""
    nb = hist.shape[0]
    if have_hist:
        a, w, below, above = st[0], st[1], int(st[2]), int(st[3])
        n = below + above
        for k in range(nb):
            n += hist[k]
    else:
        st[:] = 0.0
        # where the histogram goes: a sparse sample's median +- 8 robust sigma (the pixels
        # outside it are counted for the median)
        smed, ssig = _sample_range(image, mask, excl_bits, det, use_det, y0, y1, x0, x1, buf)
        if not (ssig > 0.0):  # few good pixels or a quantised flat sample: plain sums first
            n, smed, ssig = _cell_sums(image, mask, excl_bits, det, use_det, y0, y1, x0, x1)
            if n < max(8, min_frac * (y1 - y0) * (x1 - x0)):
                return False, 0.0, 0.0
            if not (ssig > 0.0):  # constant
                return True, smed, 0.0
            ssig = ssig / 8.0
        a = smed - 8.0 * ssig
        w = 16.0 * ssig / nb
        below, above = _cell_hist(image, mask, excl_bits, det, use_det, y0, y1, x0, x1, a, w, hist)
        n = below + above
        for k in range(nb):
            n += hist[k]
    if n < max(8, min_frac * (y1 - y0) * (x1 - x0)):
        return False, 0.0, 0.0
    med, mean, std, a, w, below, above = _clip_on_hist(hist, a, w, below, above, clip, maxiter, image,
                                                       mask, excl_bits, det, use_det, y0, y1, x0, x1)
    st[0] = a
    st[1] = w
    st[2] = below
    st[3] = above
    return True, _level(med, mean, std, mean_level), std


@njit(parallel=True)
def mesh_stats(image, mask, excl_bits, nmy, nmx, clip, maxiter, min_frac, hists, state, mean_level):
    """Clipped statistics of each cell of an ``nmy x nmx`` grid tiling the image (cell j
    spans rows ``floor(j ny / nmy)`` to ``floor((j+1) ny / nmy)``, likewise for columns).

    Good pixels: finite, no ``excl_bits`` in ``mask`` (never read if ``excl_bits`` is 0: a
    1x1 dummy will do). Per cell, reading the pixels in place (no copy, no sort of the
    pixels): the median and MAD of a sparse sample of 64 place a histogram (``hists.shape[1]``
    bins over +- 8 robust sigma), filled in one pass; clipping to ``median +- clip * std``
    is then iterated (up to ``maxiter`` times) on the histogram (:func:`_clip_on_hist`).
    The level is :func:`_level` of the clipped median and mean (the clipped mean with
    ``mean_level``, else the mode estimate), rms the clipped standard
    deviation (not corrected for the clipping). One thread per mesh row.

    ``hists`` (int32, ``(nmy * nmx, nbins)``) and ``state`` (float64, ``(nmy * nmx, 4)``)
    receive each cell's final histogram and (a, w, below, above), for
    :func:`mesh_stats_masked`. Returns (level, rms, valid) arrays of shape ``(nmy, nmx)``;
    cells with fewer than ``max(8, min_frac * cell pixels)`` good pixels are not valid.
    """
    ny, nx = image.shape
    level = np.zeros((nmy, nmx), dtype=np.float64)
    rms = np.zeros((nmy, nmx), dtype=np.float64)
    valid = np.zeros((nmy, nmx), dtype=np.bool_)
    nodet = np.zeros((1, 1), dtype=np.bool_)
    for j in prange(nmy):
        buf = np.empty(64, dtype=np.float64)
        y0 = (j * ny) // nmy
        y1 = ((j + 1) * ny) // nmy
        for i in range(nmx):
            c = j * nmx + i
            ok, lev, sd = _cell(image, mask, excl_bits, nodet, False, y0, y1, (i * nx) // nmx,
                                ((i + 1) * nx) // nmx, clip, maxiter, min_frac, hists[c], state[c],
                                False, buf, mean_level)
            valid[j, i] = ok
            level[j, i] = lev
            rms[j, i] = sd
    return level, rms, valid


@njit(parallel=True)
def mesh_stats_masked(image, mask, excl_bits, det, nmy, nmx, clip, maxiter, min_frac, hists, state,
                      mean_level):
    """:func:`mesh_stats` again without the pixels flagged in ``det`` (a boolean map of 2x2
    bins, ``det[y // 2, x // 2]``), from the histograms that ``mesh_stats`` left in
    ``hists`` and ``state`` (modified): only the flagged pixels are read, and taken out of
    their cell's histogram before the clipping is iterated again. The result is that of
    ``mesh_stats`` on the unflagged pixels up to the histogram's placement and binning."""
    ny, nx = image.shape
    level = np.zeros((nmy, nmx), dtype=np.float64)
    rms = np.zeros((nmy, nmx), dtype=np.float64)
    valid = np.zeros((nmy, nmx), dtype=np.bool_)
    nb = hists.shape[1]
    for j in prange(nmy):
        buf = np.empty(64, dtype=np.float64)
        y0 = (j * ny) // nmy
        y1 = ((j + 1) * ny) // nmy
        for i in range(nmx):
            c = j * nmx + i
            x0 = (i * nx) // nmx
            x1 = ((i + 1) * nx) // nmx
            hist = hists[c]
            st = state[c]
            a = st[0]
            w = st[1]
            have = w > 0.0
            if have:
                a32 = np.float32(a)
                inv32 = np.float32(1.0 / w)
                below = int(st[2])
                above = int(st[3])
                zero = np.float32(0.0)
                nbf = np.float32(nb)
                for jy in range(y0 >> 1, ((y1 - 1) >> 1) + 1):
                    drow = det[jy]
                    for ix in range(x0 >> 1, ((x1 - 1) >> 1) + 1):
                        if not drow[ix]:
                            continue
                        for yy in range(max(2 * jy, y0), min(2 * jy + 2, y1)):
                            row = image[yy]
                            for xx in range(max(2 * ix, x0), min(2 * ix + 2, x1)):
                                if excl_bits and (mask[yy, xx] & excl_bits):
                                    continue
                                # the arithmetic of _cell_hist: the pixel leaves the bin it went to
                                t = (np.float32(row[xx]) - a32) * inv32
                                if t >= zero and t < nbf:
                                    hist[np.int64(t)] -= 1
                                elif t < zero:
                                    below -= 1
                                elif t >= nbf:
                                    above -= 1
                st[2] = below
                st[3] = above
            ok, lev, sd = _cell(image, mask, excl_bits, det, True, y0, y1, x0, x1, clip, maxiter,
                                min_frac, hist, st, have, buf, mean_level)
            valid[j, i] = ok
            level[j, i] = lev
            rms[j, i] = sd
    return level, rms, valid


# --- first-pass source mask -------------------------------------------------------------------


@njit
def _bin_slow(image, mask, excl_bits, b, j, i):
    """One bin of :func:`binned_residual` the careful way (edges, masked or non-finite)."""
    ny, nx = image.shape
    acc = 0.0
    c = 0
    for yy in range(2 * j, min(2 * j + 2, ny)):
        for xx in range(2 * i, min(2 * i + 2, nx)):
            v = image[yy, xx] - b
            if math.isfinite(v) and not (excl_bits and (mask[yy, xx] & excl_bits)):
                acc += v
            c += 1
    return acc / c


@njit(parallel=True)
def binned_residual(image, mask, excl_bits, back2, out):
    """2x2 mean of ``image - back2[y // 2, x // 2]`` into ``out`` (float32, shape
    ``ceil(ny/2) x ceil(nx/2)``); pixels with ``excl_bits`` (``mask`` not read if 0) or
    non-finite count as 0 (the background). A last odd row/column is averaged on its own."""
    ny, nx = image.shape
    my = (ny + 1) // 2
    mx = (nx + 1) // 2
    full_x = nx // 2
    for j in prange(my):
        orow = out[j]
        brow = back2[j]
        if 2 * j + 1 >= ny:
            for i in range(mx):
                orow[i] = _bin_slow(image, mask, excl_bits, brow[i], j, i)
            continue
        r0 = image[2 * j]
        r1 = image[2 * j + 1]
        for i in range(full_x):
            orow[i] = 0.25 * (r0[2 * i] + r0[2 * i + 1] + r1[2 * i] + r1[2 * i + 1]) - brow[i]
        for i in range(full_x, mx):
            orow[i] = _bin_slow(image, mask, excl_bits, brow[i], j, i)
        # the few bins with a masked or non-finite pixel again, the careful way
        if excl_bits:
            m0 = mask[2 * j]
            m1 = mask[2 * j + 1]
            for i in range(full_x):
                if (m0[2 * i] | m0[2 * i + 1] | m1[2 * i] | m1[2 * i + 1]) & excl_bits:
                    orow[i] = _bin_slow(image, mask, excl_bits, brow[i], j, i)
        for i in range(full_x):
            if not math.isfinite(orow[i]):
                orow[i] = _bin_slow(image, mask, excl_bits, brow[i], j, i)
    return out


@njit(parallel=True)
def smooth_threshold(image, k, rms, factor, out):
    """``out`` (bool) = ``(image convolved with k[:, None] * k[None, :]) > factor * rms``
    (``k`` odd-length, outside the image counts as 0; ``rms`` a map of the image's shape).
    Row by row: the vertical then the horizontal pass, both over contiguous rows, in
    float32 (a detection mask, not a measurement)."""
    ny, nx = image.shape
    nk = k.shape[0]
    h = nk // 2
    k32 = k.astype(np.float32)
    f32 = np.float32(factor)
    for y in prange(ny):
        col = np.zeros(nx + 2 * h, dtype=np.float32)
        for j in range(nk):
            yy = y + j - h
            if yy < 0 or yy >= ny:
                continue
            kj = k32[j]
            src = image[yy]
            dst = col[h:h + nx]  # views indexed from 0: no negative-index checks, vectorises
            for x in range(nx):
                dst[x] += kj * src[x]
        acc = np.zeros(nx, dtype=np.float32)
        for j in range(nk):
            kj = k32[j]
            cj = col[j:j + nx]
            for x in range(nx):
                acc[x] += kj * cj[x]
        rr = rms[y]
        orow = out[y]
        for x in range(nx):
            orow[x] = acc[x] > f32 * rr[x]
    return out


@njit(parallel=True)
def dilate_disk(binary, r):
    """Dilate a boolean image by a disk of radius r [pixels] (pixel centres within r).

    Each row is dilated horizontally by 0..r pixels; output row y is the OR over dy of row
    ``y + dy`` dilated by ``floor(sqrt(r^2 - dy^2))``: byte-wise passes over contiguous rows."""
    ny, nx = binary.shape
    out = np.empty((ny, nx), dtype=np.bool_)
    if r <= 0:
        out[:, :] = binary
        return out
    hd = np.empty((r + 1, ny, nx), dtype=np.uint8)
    for y in prange(ny):
        src = binary[y]
        d0 = hd[0, y]
        for x in range(nx):
            d0[x] = src[x]
        for q in range(1, r + 1):
            prev = hd[q - 1, y]
            cur = hd[q, y]
            for x in range(nx):
                cur[x] = prev[x]
            c1 = cur[1:]
            c0 = cur[:nx - 1]
            p0 = prev[:nx - 1]
            p1 = prev[1:]
            for x in range(nx - 1):  # views indexed from 0: no negative-index checks
                c1[x] |= p0[x]
            for x in range(nx - 1):
                c0[x] |= p1[x]
    lim = np.empty(r + 1, dtype=np.int64)
    for dy in range(r + 1):
        lim[dy] = math.floor(math.sqrt(r * r - dy * dy))
    for y in prange(ny):
        acc = np.zeros(nx, dtype=np.uint8)
        for dy in range(-r, r + 1):
            yy = y + dy
            if yy < 0 or yy >= ny:
                continue
            src = hd[lim[abs(dy)], yy]
            for x in range(nx):
                acc[x] |= src[x]
        orow = out[y]
        for x in range(nx):
            orow[x] = acc[x] != 0
    return out


# --- interpolation ----------------------------------------------------------------------------


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


@njit
def _axis_weights(n_out, n_img, n_nodes, pad, step):
    """Node indices (n_out, 4) and Catmull-Rom weights (n_out, 4) along one axis: output
    sample i sits at image coordinate ``step * i + (step - 1) / 2``."""
    idx = np.empty((n_out, 4), dtype=np.int64)
    wts = np.empty((n_out, 4), dtype=np.float64)
    cell = n_img / (n_nodes - 2 * pad)
    for i in range(n_out):
        t = step * (i + 0.5) / cell - 0.5 + pad
        f0 = math.floor(t)
        w0, w1, w2, w3 = _cubic_weights(t - f0)
        wts[i, 0] = w0
        wts[i, 1] = w1
        wts[i, 2] = w2
        wts[i, 3] = w3
        for q in range(4):
            idx[i, q] = min(max(f0 - 1 + q, 0), n_nodes - 1)
    return idx, wts


@njit
def _combine4(r0, r1, r2, r3, w0, w1, w2, w3, out):
    """``out = w0 r0 + w1 r1 + w2 r2 + w3 r3`` (float32 rows)."""
    for x in range(out.shape[0]):
        out[x] = w0 * r0[x] + w1 * r1[x] + w2 * r2[x] + w3 * r3[x]


@njit(parallel=True)
def interp_mesh_pair(back_mesh, rms_mesh, ny, nx, pad, step, rms_floor, back, rms):
    """Bicubic (Catmull-Rom) interpolation of two meshes (level and rms, same shape) to
    float32 maps of ``ceil(ny / step) x ceil(nx / step)`` samples of an ``ny x nx`` image
    (``step`` 1: every pixel; 2: the centres of 2x2 bins). The meshes tile the image in
    ``nmy - 2 pad`` x ``nmx - 2 pad`` equal cells plus ``pad`` extrapolated nodes on each
    side; node (j, i) sits at the centre of cell ``(j - pad, i - pad)``, i.e. at image row
    ``(j - pad + 0.5) * ny / (nmy - 2 pad) - 0.5``. Written into ``back`` and ``rms``
    (float32, allocated by the caller: numpy's large allocations fault in faster than
    numba's); the rms map is floored at ``rms_floor``. Returns (back, rms)."""
    nmy, nmx = back_mesh.shape
    oy = (ny + step - 1) // step
    ox = (nx + step - 1) // step
    ix, wx = _axis_weights(ox, nx, nmx, pad, step)
    iy, wy = _axis_weights(oy, ny, nmy, pad, step)
    # along x at every node row (float32: the maps are float32, the weights sum to 1)
    tb = np.empty((nmy, ox), dtype=np.float32)
    tr = np.empty((nmy, ox), dtype=np.float32)
    for j in prange(nmy):
        for x in range(ox):
            i0 = ix[x, 0]
            i1 = ix[x, 1]
            i2 = ix[x, 2]
            i3 = ix[x, 3]
            tb[j, x] = (wx[x, 0] * back_mesh[j, i0] + wx[x, 1] * back_mesh[j, i1]
                        + wx[x, 2] * back_mesh[j, i2] + wx[x, 3] * back_mesh[j, i3])
            tr[j, x] = (wx[x, 0] * rms_mesh[j, i0] + wx[x, 1] * rms_mesh[j, i1]
                        + wx[x, 2] * rms_mesh[j, i2] + wx[x, 3] * rms_mesh[j, i3])
    floor32 = np.float32(rms_floor)
    # then along y for every output row: four contiguous node rows per output row
    for y in prange(oy):
        w0 = np.float32(wy[y, 0])
        w1 = np.float32(wy[y, 1])
        w2 = np.float32(wy[y, 2])
        w3 = np.float32(wy[y, 3])
        _combine4(tb[iy[y, 0]], tb[iy[y, 1]], tb[iy[y, 2]], tb[iy[y, 3]], w0, w1, w2, w3, back[y])
        _combine4(tr[iy[y, 0]], tr[iy[y, 1]], tr[iy[y, 2]], tr[iy[y, 3]], w0, w1, w2, w3, rms[y])
        rr = rms[y]
        for x in range(ox):
            rr[x] = max(rr[x], floor32)
    return back, rms
