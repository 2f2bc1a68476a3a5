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


@njit(parallel=True)
def overscan_row_medians(amp, y0, y1, x0, x1):
    """Median of the overscan columns ``[x0:x1]`` of each amplifier row [ADU].

    Rows outside ``[y0:y1]`` are filled with the value of the nearest overscan row.
    Returns float64 of length ``amp.shape[0]``.
    """
    ny = amp.shape[0]
    n = x1 - x0
    out = np.empty(ny, dtype=np.float64)
    for r in prange(y0, y1):
        buf = np.empty(n, dtype=np.float64)
        for j in range(n):
            buf[j] = amp[r, x0 + j]
        out[r] = np.median(buf)
    for r in range(0, y0):
        out[r] = out[y0]
    for r in range(y1, ny):
        out[r] = out[y1 - 1]
    return out


@njit
def running_median(values, window):
    """Centred running median of a 1-d float64 array (window truncated at the ends)."""
    n = values.shape[0]
    half = window // 2
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        lo = max(0, i - half)
        hi = min(n, i + half + 1)
        out[i] = np.median(values[lo:hi])
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


@njit
def _row_calib(src, b, d, fl, mb, md, mf, oi, ov, om, lvl, gain, rn2, sat_adu, exptime):
    """One output row of :func:`isr_amp` with calibrations (``src`` already in output order)."""
    for i in range(oi.shape[0]):
        raw = src[i]
        s = (raw - lvl) * gain - b[i] - d[i] * exptime
        f = fl[i]
        bits = np.int64(mb[i]) | np.int64(md[i]) | np.int64(mf[i])
        if raw >= sat_adu:
            bits |= SAT
        ok = f > 0.0 and math.isfinite(s)
        if not ok:
            bits |= NO_DATA
        oi[i] = s / f if ok else 0.0
        ov[i] = (max(s, 0.0) + rn2) / (f * f) if ok else 0.0
        om[i] = bits


@njit
def _row_plain(src, oi, ov, om, lvl, gain, rn2, sat_adu):
    """One output row of :func:`isr_amp` without calibrations."""
    for i in range(oi.shape[0]):
        raw = src[i]
        s = (raw - lvl) * gain
        bits = np.int64(0)
        if raw >= sat_adu:
            bits |= SAT
        ok = math.isfinite(s)
        if not ok:
            bits |= NO_DATA
        oi[i] = s if ok else 0.0
        ov[i] = max(s, 0.0) + rn2 if ok else 0.0
        om[i] = bits


@njit(parallel=True)
def isr_amp(amp, level, dy0, dy1, dx0, dx1, oy0, ox0, flip_x, flip_y, gain, rdnoise,
            sat_adu, use_calibs, bias, dark, flat, mask_b, mask_d, mask_f, exptime,
            out_img, out_var, out_mask):
    """One amplifier in one pass: overscan, trim, flip, gain, bias, dark, flat, variance, mask.

    ``amp`` raw ADU array; ``level[r]`` the smoothed overscan level of amp row r [ADU];
    ``[dy0:dy1, dx0:dx1]`` the DATASEC; ``(oy0, ox0)`` the DETSEC origin in the output.
    With ``use_calibs`` the pixel becomes ``((raw - level) * gain - bias - dark * exptime) / flat``
    [e-] with variance ``(max(pre-flat signal, 0) + rdnoise^2) / flat^2`` [e-^2], and the
    three calib masks are OR-ed in; without, bias/dark/flat/masks are not read (pass 1x1
    dummies). Pixels at or above ``sat_adu`` get SAT; a non-finite result or a flat <= 0
    gets NO_DATA (value 0) for later interpolation. Output rows are written in order; a
    flipped amplifier's rows are read backwards. Per-row views indexed from 0 keep the inner
    loops free of negative-index checks, so they vectorise.
    """
    ny = dy1 - dy0
    nx = dx1 - dx0
    rn2 = rdnoise * rdnoise
    for j in prange(ny):
        if flip_y:
            r = dy1 - 1 - j
        else:
            r = dy0 + j
        oy = oy0 + j
        lvl = level[r]
        oi = out_img[oy, ox0:ox0 + nx]
        ov = out_var[oy, ox0:ox0 + nx]
        om = out_mask[oy, ox0:ox0 + nx]
        if use_calibs:
            b = bias[oy, ox0:ox0 + nx]
            d = dark[oy, ox0:ox0 + nx]
            fl = flat[oy, ox0:ox0 + nx]
            mb = mask_b[oy, ox0:ox0 + nx]
            md = mask_d[oy, ox0:ox0 + nx]
            mf = mask_f[oy, ox0:ox0 + nx]
            if flip_x:
                _row_calib(_reversed(amp[r, dx0:dx1]), b, d, fl, mb, md, mf, oi, ov, om, lvl, gain,
                           rn2, sat_adu, exptime)
            else:
                _row_calib(amp[r, dx0:dx1], b, d, fl, mb, md, mf, oi, ov, om, lvl, gain, rn2,
                           sat_adu, exptime)
        else:
            if flip_x:
                _row_plain(_reversed(amp[r, dx0:dx1]), oi, ov, om, lvl, gain, rn2, sat_adu)
            else:
                _row_plain(amp[r, dx0:dx1], oi, ov, om, lvl, gain, rn2, sat_adu)


# --- masks --------------------------------------------------------------------------------


@njit(parallel=True)
def grow_mask_bit(mask, bit, radius):
    """Dilate mask bit ``bit`` by a square of half-size ``radius`` pixels, in place.

    Rows without the bit cost one read-only scan."""
    ny, nx = mask.shape
    if radius <= 0:
        return
    has = np.zeros(ny, dtype=np.uint8)
    for y in prange(ny):
        for x in range(nx):
            if mask[y, x] & bit:
                has[y] = 1
                break
    if not has.any():
        return
    tmp = np.zeros((ny, nx), dtype=np.uint8)
    for y in prange(ny):
        if has[y]:
            for x in range(nx):
                if mask[y, x] & bit:
                    lo = max(0, x - radius)
                    hi = min(nx, x + radius + 1)
                    for k in range(lo, hi):
                        tmp[y, k] = 1
    for y in prange(ny):
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


@njit(parallel=True)
def count_bits(mask):
    """Number of pixels with each of the 16 bits of a uint16 mask set (int64[16])."""
    ny, nx = mask.shape
    per_row = np.zeros((ny, 16), dtype=np.int64)
    for y in prange(ny):
        for x in range(nx):
            v = mask[y, x]
            if v:
                for b in range(16):
                    if v & (1 << b):
                        per_row[y, b] += 1
    return per_row.sum(axis=0)


@njit(parallel=True)
def interpolate_rows(image, variance, mask, badbits, keepbits):
    """Replace pixels with any of ``badbits`` (and none of ``keepbits``) by linear
    interpolation along their row between the nearest good pixels; set INTERP. In place.

    A run touching the row end takes the value of its one good neighbour; a row with no
    good pixel is left as is.
    """
    ny, nx = image.shape
    for y in prange(ny):
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
    sampling every ``step``-th pixel along each axis. NaN for an empty cell."""
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
def _local_sky(sky, y, x, block):
    return sky[y // block, x // block]


@njit(parallel=True)
def cr_pass(work, variance, mask, sky, block, cr, only_near, nsigma, contrast, noise_k,
            skipbits, out_new):
    """One cosmic-ray search pass; marks ``out_new[y, x] = 1`` for newly found pixels.

    A pixel (without ``skipbits``, not yet in ``cr``) is a cosmic ray when it is at least
    ``nsigma`` sigma above the local sky and, in some direction (2 axes, 2 diagonals), it
    exceeds the mean of its two neighbours by the factor ``contrast`` (``contrast**2`` along
    diagonals) after a noise allowance of ``noise_k`` sigma on both sides:
    ``(I0 - k s0) > c_d (m_d + k s_m)``, intensities above sky. A star whose FWHM is
    ``>= 2 px`` cannot pass this test for ``contrast >= 2`` (its ratio is < 1.9 / 3.5).
    With ``only_near`` only pixels 8-adjacent to a pixel of ``cr`` are tested.
    ``sky`` is a coarse grid of ``block``-pixel cells.
    """
    ny, nx = work.shape
    c2 = contrast * contrast
    for y in prange(1, ny - 1):
        for x in range(1, nx - 1):
            if cr[y, x] or (mask[y, x] & skipbits):
                continue
            if only_near:
                near = False
                for dy in range(-1, 2):
                    for dx in range(-1, 2):
                        if cr[y + dy, x + dx]:
                            near = True
                if not near:
                    continue
            b = _local_sky(sky, y, x, block)
            i0 = work[y, x] - b
            v0 = variance[y, x]
            if i0 <= 0.0 or v0 <= 0.0 or i0 * i0 < nsigma * nsigma * v0:
                continue
            s0 = math.sqrt(v0)
            lhs = i0 - noise_k * s0
            found = False
            for d in range(4):
                if d == 0:
                    dy, dx, fac = 0, 1, contrast
                elif d == 1:
                    dy, dx, fac = 1, 0, contrast
                elif d == 2:
                    dy, dx, fac = 1, 1, c2
                else:
                    dy, dx, fac = 1, -1, c2
                ma = mask[y + dy, x + dx]
                mb = mask[y - dy, x - dx]
                if (ma & skipbits) or (mb & skipbits):
                    continue
                a = work[y + dy, x + dx] - b
                c = work[y - dy, x - dx] - b
                m = 0.5 * (a + c)
                sm = 0.5 * math.sqrt(max(variance[y + dy, x + dx], 0.0) + max(variance[y - dy, x - dx], 0.0))
                if lhs > fac * (m + noise_k * sm):
                    found = True
                    break
            if found:
                out_new[y, x] = 1


@njit(parallel=True)
def replace_flagged(src, flagged, mask, avoidbits, fallback, block, out):
    """For each flagged pixel, write into ``out`` the median of the unflagged pixels of
    ``src`` (without ``avoidbits``) in the smallest square window (half-size 2 to 8) that
    holds at least 4 of them; if none, the coarse ``fallback`` grid value."""
    ny, nx = src.shape
    for y in prange(ny):
        buf = np.empty(17 * 17, dtype=np.float64)
        for x in range(nx):
            if not flagged[y, x]:
                continue
            done = False
            for h in range(2, 9):
                n = 0
                for yy in range(max(0, y - h), min(ny, y + h + 1)):
                    for xx in range(max(0, x - h), min(nx, x + h + 1)):
                        if not flagged[yy, xx] and not (mask[yy, xx] & avoidbits):
                            buf[n] = src[yy, xx]
                            n += 1
                if n >= 4:
                    out[y, x] = np.median(buf[:n])
                    done = True
                    break
            if not done:
                out[y, x] = fallback[y // block, x // block]


@njit(parallel=True)
def merge_flags(cr, new):
    """``cr |= new``; returns how many pixels were newly set."""
    ny, nx = cr.shape
    counts = np.zeros(ny, dtype=np.int64)
    for y in prange(ny):
        c = 0
        for x in range(nx):
            if new[y, x] and not cr[y, x]:
                cr[y, x] = 1
                c += 1
        counts[y] = c
    return counts.sum()


@njit(parallel=True)
def dilate_flags(flags, skip_mask, skipbits):
    """8-connected dilation of a uint8 flag plane by one pixel (not onto ``skipbits``)."""
    ny, nx = flags.shape
    out = flags.copy()
    for y in prange(ny):
        for x in range(nx):
            if flags[y, x] or (skip_mask[y, x] & skipbits):
                continue
            for dy in range(-1, 2):
                yy = y + dy
                if yy < 0 or yy >= ny:
                    continue
                for dx in range(-1, 2):
                    xx = x + dx
                    if 0 <= xx < nx and flags[yy, xx]:
                        out[y, x] = 1
    return out
