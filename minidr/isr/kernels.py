"""Numba kernels of instrument signature removal. Pure functions on arrays.

Units: raw pixels in ADU (any integer dtype), gains in e-/ADU, everything written out in
electrons (image) and electrons^2 (variance). Arrays are indexed ``[y, x]``; sections are
0-based half-open. Mask bits are passed in as integers (the values of ``MaskBit``) so that
this module imports nothing from minidr but the numba decorator.
"""

from __future__ import annotations

import math

import numpy as np

from minidr._jit import njit, prange

# MaskBit values (kept literal here: kernels import only numpy/numba/math/_jit).
SAT = 1
BAD = 2
HOT = 4
CR = 8
NO_DATA = 16
INTERP = 64


# --- overscan -----------------------------------------------------------------------------


@njit(inline="always")
def _insertion_sort(buf, n):
    """Sort ``buf[:n]`` in place (short arrays: an overscan row, a smoothing window)."""
    for i in range(1, n):
        v = buf[i]
        j = i - 1
        while j >= 0 and buf[j] > v:
            buf[j + 1] = buf[j]
            j -= 1
        buf[j + 1] = v


@njit(inline="always")
def _sorted_median(buf, n):
    """Median of the sorted ``buf[:n]``."""
    if n % 2:
        return buf[n // 2]
    return 0.5 * (buf[n // 2 - 1] + buf[n // 2])


@njit
def overscan_row_medians(amp, y0, y1, x0, x1):
    """Median of the overscan columns ``[x0:x1]`` of each amplifier row [ADU].

    Rows outside ``[y0:y1]`` are filled with the value of the nearest overscan row.
    Returns float64 of length ``amp.shape[0]``. One scratch buffer, an insertion sort per
    row (an overscan row has tens of pixels); ``np.median`` for wide overscans.
    """
    ny = amp.shape[0]
    n = x1 - x0
    out = np.empty(ny, dtype=np.float64)
    buf = np.empty(n, dtype=np.float64)
    for r in range(y0, y1):
        row = amp[r, x0:x1]
        for j in range(n):
            buf[j] = row[j]
        if n <= 64:
            _insertion_sort(buf, n)
            out[r] = _sorted_median(buf, n)
        else:
            out[r] = np.median(buf)
    for r in range(0, y0):
        out[r] = out[y0]
    for r in range(y1, ny):
        out[r] = out[y1 - 1]
    return out


@njit
def running_median(values, window):
    """Centred running median of a 1-d float64 array (window truncated at the ends).

    The window is kept sorted: each step removes the value leaving it and inserts the one
    entering it (O(window) per step, no allocation). NaN-free input expected."""
    n = values.shape[0]
    half = window // 2
    out = np.empty(n, dtype=np.float64)
    if n == 0:
        return out
    win = np.empty(2 * half + 1, dtype=np.float64)
    # window of output 0: values[0 : min(n, half + 1)]
    m = 0
    hi = min(n, half + 1)
    for t in range(hi):
        win[m] = values[t]
        m += 1
    _insertion_sort(win, m)
    for i in range(n):
        out[i] = _sorted_median(win, m)
        # next window [max(0, i + 1 - half), min(n, i + 2 + half)): drop one, add one
        leave = i - half
        enter = i + 1 + half
        if leave >= 0:
            v = values[leave]
            j = 0
            while j < m - 1 and win[j] != v:
                j += 1
            for q in range(j, m - 1):
                win[q] = win[q + 1]
            m -= 1
        if enter < n:
            v = values[enter]
            j = m - 1
            while j >= 0 and win[j] > v:
                win[j + 1] = win[j]
                j -= 1
            win[j + 1] = v
            m += 1
    return out


# --- the fused ISR pass -------------------------------------------------------------------


@njit
def _reversed(row):
    """A contiguous reversed copy of a 1-d array (a flipped amplifier row, in cache)."""
    n = row.shape[0]
    out = np.empty(n, dtype=row.dtype)
    for i in range(n):
        out[i] = row[np.uint64(n - 1 - i)]  # unsigned: no negative-index check
    return out


@njit(inline="always")
def _row_calib(src, b, d, fl, mb, md, mf, oi, ov, om, lvl, gain, rn2, fvar, sat_adu, exptime):
    """One output row of :func:`isr_amp` with calibrations (``src`` already in output order),
    in float32 and without branches (the loop vectorises; one division per pixel). Returns
    the OR of the row's mask bits."""
    acc = np.uint16(0)
    zero = np.float32(0.0)
    one = np.float32(1.0)
    for i in range(oi.shape[0]):
        raw = np.float32(src[i])
        s = (raw - lvl) * gain - b[i] - d[i] * exptime
        f = fl[i]
        ok = (f > zero) & (abs(s) < np.float32(np.inf))  # abs(NaN) < inf is False
        inv = one / f
        bits = (mb[i] | md[i] | mf[i] | (np.uint16(raw >= sat_adu) * np.uint16(SAT))
                | (np.uint16(not ok) * np.uint16(NO_DATA)))
        o = s * inv
        oi[i] = o if ok else zero
        ov[i] = (max(s, zero) + rn2) * (inv * inv) + fvar * (o * o) if ok else zero
        om[i] = bits
        acc |= bits
    return acc


@njit(inline="always")
def _row_plain(src, oi, om, lvl, gain, sat_adu):
    """One output row of :func:`isr_amp` without calibrations (no variance); returns the OR
    of its mask bits."""
    acc = np.uint16(0)
    zero = np.float32(0.0)
    for i in range(oi.shape[0]):
        raw = np.float32(src[i])
        s = (raw - lvl) * gain
        ok = abs(s) < np.float32(np.inf)
        bits = (np.uint16(raw >= sat_adu) * np.uint16(SAT)) | (np.uint16(not ok) * np.uint16(NO_DATA))
        oi[i] = s if ok else zero
        om[i] = bits
        acc |= bits
    return acc


@njit
def isr_amp(amp, level, dy0, dy1, dx0, dx1, oy0, ox0, flip_x, flip_y, gain, rdnoise, flat_noise,
            sat_adu, use_calibs, bias, dark, flat, mask_b, mask_d, mask_f, exptime,
            out_img, out_var, out_mask, row_or):
    """One amplifier in one pass: overscan, trim, flip, gain, bias, dark, flat, variance, mask.

    ``amp`` raw ADU array (any integer dtype; values below 2^24 are exact in the float32
    arithmetic); ``level[r]`` the smoothed overscan level of amp row r [ADU];
    ``[dy0:dy1, dx0:dx1]`` the DATASEC; ``(oy0, ox0)`` the DETSEC origin in the output.
    With ``use_calibs`` the pixel becomes ``((raw - level) * gain - bias - dark * exptime) / flat``
    [e-] with variance ``(max(pre-flat signal, 0) + rdnoise^2) / flat^2 + (flat_noise * pixel)^2``
    [e-^2] (``flat_noise``: the master flat's relative rms per pixel), and the
    three calib masks are OR-ed in; without, only the image (``(raw - level) * gain``) and
    the mask are written: bias/dark/flat/masks and ``out_var`` are not touched (pass 1x1
    dummies). All arithmetic is float32. Pixels at or above ``sat_adu`` get SAT; a
    non-finite result or a flat <= 0 gets NO_DATA (value 0) for later interpolation.
    ``row_or[oy]`` accumulates (OR) the mask bits of each output row, so that later mask
    passes can skip clean rows (amplifiers must be run one after the other: rows shared by
    two amplifiers are OR-ed, not raced). Output rows are written in order; a flipped
    amplifier's rows are read backwards (x flips via a reversed copy of the row). Per-row
    views indexed from 0 keep the inner loops free of negative-index checks, so they
    vectorise. One thread: the pass is bound by memory bandwidth (one thread moves ~12 GB/s
    here; a second added 15% on an idle machine and cost 2-3x the CPU time in OpenMP
    spin-waits on a busy one, where amplifier-sized parallel regions are too short).
    """
    ny = dy1 - dy0
    nx = dx1 - dx0
    g = np.float32(gain)
    rn2 = np.float32(rdnoise * rdnoise)
    fvar = np.float32(flat_noise * flat_noise)
    sat = np.float32(sat_adu)
    et = np.float32(exptime)
    for j in range(ny):
        if flip_y:
            r = dy1 - 1 - j
        else:
            r = dy0 + j
        oy = oy0 + j
        lvl = np.float32(level[r])
        oi = out_img[oy, ox0:ox0 + nx]
        om = out_mask[oy, ox0:ox0 + nx]
        if flip_x:
            src = _reversed(amp[r, dx0:dx1])
        else:
            src = amp[r, dx0:dx1]
        if use_calibs:
            acc = _row_calib(src, bias[oy, ox0:ox0 + nx], dark[oy, ox0:ox0 + nx],
                             flat[oy, ox0:ox0 + nx], mask_b[oy, ox0:ox0 + nx],
                             mask_d[oy, ox0:ox0 + nx], mask_f[oy, ox0:ox0 + nx], oi,
                             out_var[oy, ox0:ox0 + nx], om, lvl, g, rn2, fvar, sat, et)
        else:
            acc = _row_plain(src, oi, om, lvl, g, sat)
        row_or[oy] |= np.int64(acc)


# --- masks --------------------------------------------------------------------------------


@njit
def grow_mask_bit(mask, bit, radius, row_or):
    """Dilate mask bit ``bit`` by a square of half-size ``radius`` pixels, in place.

    ``row_or[y]`` is the OR of row y's mask bits (rows without ``bit`` are skipped); rows
    that gain the bit get it added there too."""
    ny, nx = mask.shape
    if radius <= 0:
        return
    has = np.zeros(ny, dtype=np.uint8)
    anyrow = False
    for y in range(ny):
        if row_or[y] & bit:
            has[y] = 1
            anyrow = True
    if not anyrow:
        return
    tmp = np.zeros((ny, nx), dtype=np.uint8)
    for y in range(ny):
        if has[y]:
            for x in range(nx):
                if mask[y, x] & bit:
                    lo = max(0, x - radius)
                    hi = min(nx, x + radius + 1)
                    for k in range(lo, hi):
                        tmp[y, k] = 1
    for y in range(ny):
        lo = max(0, y - radius)
        hi = min(ny, y + radius + 1)
        near = False
        for k in range(lo, hi):
            if has[k]:
                near = True
        if not near:
            continue
        for x in range(nx):
            if not (mask[y, x] & bit):
                for k in range(lo, hi):
                    if tmp[k, x]:
                        mask[y, x] |= bit
                        break
        row_or[y] |= bit


@njit
def count_bits(mask, row_or):
    """Number of pixels with each of the 16 bits of a uint16 mask set (int64[16]); rows whose
    ``row_or`` is 0 are skipped."""
    ny, nx = mask.shape
    counts = np.zeros(16, dtype=np.int64)
    for y in range(ny):
        if row_or[y] == 0:
            continue
        for x in range(nx):
            v = mask[y, x]
            if v:
                for b in range(16):
                    if v & (1 << b):
                        counts[b] += 1
    return counts


@njit(parallel=True)
def interpolate_rows(image, variance, mask, badbits, keepbits, row_or):
    """Replace pixels with any of ``badbits`` (and none of ``keepbits``) by linear
    interpolation along their row between the nearest good pixels; set INTERP. In place.

    A run touching the row end takes the value of its one good neighbour; a row with no
    good pixel is left as is. Rows whose ``row_or`` lacks ``badbits`` are skipped.
    """
    ny, nx = image.shape
    for y in prange(ny):
        if not (row_or[y] & badbits):
            continue
        row_or[y] |= INTERP
        x = 0
        while x < nx:
            mm = mask[y, x]
            if (mm & badbits) and not (mm & keepbits):
                start = x
                while x < nx and (mask[y, x] & badbits) and not (mask[y, x] & keepbits):
                    x += 1
                stop = x  # exclusive
                left = start - 1
                right = stop
                if left < 0 and right >= nx:
                    continue
                for k in range(start, stop):
                    if left < 0:
                        vi = image[y, right]
                        vv = variance[y, right]
                    elif right >= nx:
                        vi = image[y, left]
                        vv = variance[y, left]
                    else:
                        t = (k - left) / (right - left)
                        vi = (1.0 - t) * image[y, left] + t * image[y, right]
                        vv = (1.0 - t) * variance[y, left] + t * variance[y, right]
                    image[y, k] = vi
                    variance[y, k] = vv
                    mask[y, k] |= INTERP
            else:
                x += 1


# --- stacking helpers shared with calib ---------------------------------------------------


@njit(parallel=True)
def block_medians(image, mask, badbits, block, step):
    """Median of the pixels (without ``badbits``) in each ``block`` x ``block`` cell,
    sampling every ``step``-th pixel along each axis. NaN for an empty cell. Rows of cells
    in parallel."""
    ny, nx = image.shape
    nby = (ny + block - 1) // block
    nbx = (nx + block - 1) // block
    out = np.empty((nby, nbx), dtype=np.float64)
    for cy in prange(nby):
        buf = np.empty(((block + step - 1) // step) ** 2, dtype=np.float64)
        for cx in range(nbx):
            n = 0
            for y in range(cy * block, min(ny, (cy + 1) * block), step):
                for x in range(cx * block, min(nx, (cx + 1) * block), step):
                    if not (mask[y, x] & badbits):
                        buf[n] = image[y, x]
                        n += 1
            if n > 0:
                out[cy, cx] = np.median(buf[:n])
            else:
                out[cy, cx] = np.nan
    return out


# --- cosmic rays --------------------------------------------------------------------------


@njit
def _cr_test(work, variance, mask, b, y, x, nsigma, contrast, c2, noise_k, skipbits):
    """The cosmic-ray test of one pixel (see :func:`cr_seeds`); ``b`` the local sky."""
    i0 = work[y, x] - b
    v0 = variance[y, x]
    if i0 <= 0.0 or v0 <= 0.0 or i0 * i0 < nsigma * nsigma * v0:
        return False
    if mask[y, x] & skipbits:
        return False
    lhs = i0 - noise_k * math.sqrt(v0)
    for d in range(4):
        if d == 0:
            dy, dx, fac = 0, 1, contrast
        elif d == 1:
            dy, dx, fac = 1, 0, contrast
        elif d == 2:
            dy, dx, fac = 1, 1, c2
        else:
            dy, dx, fac = 1, -1, c2
        if (mask[y + dy, x + dx] & skipbits) or (mask[y - dy, x - dx] & skipbits):
            continue
        m = 0.5 * (work[y + dy, x + dx] + work[y - dy, x - dx]) - b
        if lhs <= fac * m and noise_k >= 0.0 and fac > 0.0:
            continue  # fails without the noise term, so with it (the case of star pixels)
        sm = 0.5 * math.sqrt(max(variance[y + dy, x + dx], 0.0) + max(variance[y - dy, x - dx], 0.0))
        if lhs > fac * (m + noise_k * sm):
            return True
    return False


@njit(parallel=True)
def cr_seeds(work, variance, mask, sky, block, nsigma, contrast, noise_k, skipbits, out):
    """First cosmic-ray pass over the whole frame; sets ``out[y, x] = 1`` for seeds.

    A pixel (without ``skipbits``, not on the 1-pixel border) is a seed when it is at least
    ``nsigma`` sigma above the local sky and, in some direction (2 axes, 2 diagonals), it
    exceeds the mean of its two neighbours by the factor ``contrast`` (``contrast**2`` along
    diagonals) after a noise allowance of ``noise_k`` sigma on both sides:
    ``(I0 - k s0) > c_d (m_d + k s_m)``, intensities above sky. A star with FWHM >= 2 px
    cannot pass for ``contrast >= 2`` (its ratios are < 1.9 along axes, < 3.5 along
    diagonals). ``sky`` is a coarse grid of ``block``-pixel cells.

    Cost: one streaming pass over image and variance (8 B/px). Rows are taken in chunks (one
    per task, buffers allocated once per chunk); each row gets a float32 significance
    prefilter without branches over the whole row (sky expanded per cell row, threshold
    relaxed by 0.1% so that it passes every pixel the exact float64 test passes), and only
    the few flagged pixels get the full test (found 8 flags at a time).
    """
    ny, nx = work.shape
    c2 = contrast * contrast
    n2 = np.float32(nsigma * nsigma * 0.999)
    zero = np.float32(0.0)
    nbx = sky.shape[1]
    nchunk = (ny + 63) // 64
    for c in prange(nchunk):
        brow = np.empty(nx, dtype=np.float32)
        nw = (nx + 7) // 8
        flag = np.zeros(nw * 8, dtype=np.uint8)
        words = flag.view(np.uint64)  # the flags 8 at a time: skip empty words
        cur = -1
        for y in range(max(1, c * 64), min(ny - 1, (c + 1) * 64)):
            by = y // block
            if by != cur:
                cur = by
                for cx in range(nbx):
                    b = np.float32(sky[by, cx])
                    for x in range(cx * block, min(nx, (cx + 1) * block)):
                        brow[x] = b
            wr = work[y]
            vr = variance[y]
            anyf = np.uint8(0)
            for x in range(nx):
                v = np.float32(vr[x])
                i0 = np.float32(wr[x]) - brow[x]
                f = np.uint8(i0 > zero) & np.uint8(v > zero) & np.uint8(i0 * i0 >= n2 * v)
                flag[x] = f
                anyf |= f
            if not anyf:
                continue
            for w in range(nw):
                if words[w] == 0:
                    continue
                for x in range(max(1, 8 * w), min(nx - 1, 8 * w + 8)):
                    if flag[x]:
                        b = sky[by, x // block]
                        if _cr_test(work, variance, mask, b, y, x, nsigma, contrast, c2, noise_k, skipbits):
                            out[y, x] = 1


@njit
def flag_coords(flags):
    """``(ys, xs)`` int64 of the non-zero pixels of a uint8 plane, row-major (np.nonzero)."""
    ny, nx = flags.shape
    counts = np.zeros(ny, dtype=np.int64)
    for y in range(ny):
        c = 0
        row = flags[y]
        for x in range(nx):
            c += row[x] != 0
        counts[y] = c
    starts = np.zeros(ny + 1, dtype=np.int64)
    for y in range(ny):
        starts[y + 1] = starts[y] + counts[y]
    ys = np.empty(starts[ny], dtype=np.int64)
    xs = np.empty(starts[ny], dtype=np.int64)
    for y in range(ny):
        if counts[y] == 0:
            continue
        k = starts[y]
        row = flags[y]
        for x in range(nx):
            if row[x]:
                ys[k] = y
                xs[k] = x
                k += 1
    return ys, xs


@njit
def cr_extend(work, variance, mask, sky, block, cr, ys, xs, nsigma, contrast, noise_k, skipbits):
    """Test the 8 neighbours of the listed hits that are not hits yet; mark the new ones in
    ``cr`` and return their coordinates ``(ys, xs)`` (int64 arrays)."""
    ny, nx = work.shape
    c2 = contrast * contrast
    out_y = []
    out_x = []
    for n in range(ys.shape[0]):
        y0 = ys[n]
        x0 = xs[n]
        for yy in range(max(1, y0 - 1), min(ny - 1, y0 + 2)):
            for xx in range(max(1, x0 - 1), min(nx - 1, x0 + 2)):
                if cr[yy, xx]:
                    continue
                b = sky[yy // block, xx // block]
                if _cr_test(work, variance, mask, b, yy, xx, nsigma, contrast, c2, noise_k, skipbits):
                    cr[yy, xx] = 1
                    out_y.append(yy)
                    out_x.append(xx)
    ry = np.empty(len(out_y), dtype=np.int64)
    rx = np.empty(len(out_x), dtype=np.int64)
    for i in range(len(out_y)):
        ry[i] = out_y[i]
        rx[i] = out_x[i]
    return ry, rx


@njit
def local_medians(src, flagged, mask, avoidbits, fallback, block, ys, xs):
    """For each listed pixel, the median of the unflagged pixels of ``src`` (without
    ``avoidbits``) in the smallest square window (half-size 2 to 8) holding at least 4 of
    them; if none, the coarse ``fallback`` grid value. Returns float64[len(ys)]."""
    ny, nx = src.shape
    n = ys.shape[0]
    out = np.empty(n, dtype=np.float64)
    for k in range(n):
        buf = np.empty(17 * 17, dtype=np.float64)
        y = ys[k]
        x = xs[k]
        out[k] = fallback[y // block, x // block]
        for h in range(2, 9):
            m = 0
            for yy in range(max(0, y - h), min(ny, y + h + 1)):
                for xx in range(max(0, x - h), min(nx, x + h + 1)):
                    if not flagged[yy, xx] and not (mask[yy, xx] & avoidbits):
                        buf[m] = src[yy, xx]
                        m += 1
            if m >= 4:
                out[k] = np.median(buf[:m])
                break
    return out


@njit
def dilate_list(flags, mask, skipbits, ys, xs):
    """Grow the listed flagged pixels by one pixel (8-connected, not onto ``skipbits``);
    marks ``flags`` and returns the coordinates of every flagged pixel (listed + added)."""
    ny, nx = flags.shape
    out_y = []
    out_x = []
    for n in range(ys.shape[0]):
        out_y.append(ys[n])
        out_x.append(xs[n])
    for n in range(ys.shape[0]):
        y0 = ys[n]
        x0 = xs[n]
        for yy in range(max(0, y0 - 1), min(ny, y0 + 2)):
            for xx in range(max(0, x0 - 1), min(nx, x0 + 2)):
                if not flags[yy, xx] and not (mask[yy, xx] & skipbits):
                    flags[yy, xx] = 1
                    out_y.append(yy)
                    out_x.append(xx)
    ry = np.empty(len(out_y), dtype=np.int64)
    rx = np.empty(len(out_x), dtype=np.int64)
    for i in range(len(out_y)):
        ry[i] = out_y[i]
        rx[i] = out_x[i]
    return ry, rx
