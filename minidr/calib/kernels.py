"""Numba kernels of master-calibration stacking. Pure functions on arrays.

Units are whatever the stacked frames carry (e-, e-/s or unitless); the kernels only clip
and average along the first axis of a ``(n_frames, ny, nx)`` stack.
"""

from __future__ import annotations

import math

import numpy as np

from minidr._jit import njit, prange
from minidr.isr.kernels import _insertion_sort


@njit(inline="always")
def _median_sorting(buf, m):
    """Median of ``buf[:m]``; leaves ``buf[:m]`` in some order (insertion sort for the short
    per-pixel stacks, numba's quickselect median for long arrays)."""
    if m > 32:
        return np.median(buf[:m])
    _insertion_sort(buf, m)
    if m % 2:
        return buf[m // 2]
    return 0.5 * (buf[m // 2 - 1] + buf[m // 2])


@njit(inline="always")
def _clipped_mean_1d(vals, keep, buf, clip, iterations, floor):
    """Sigma-clipped mean of ``vals`` (float64, NaN ignored); ``keep`` (uint8) and ``buf``
    (float64, at least as long as ``vals``) are scratch.

    First pass: centre = median, scale = max(1.4826 * MAD, ``floor``) (the standard deviation
    if both are 0); then up to ``iterations - 1`` passes with the mean and max(standard
    deviation, ``floor``) of the kept values. Values more than ``clip`` * scale from the
    centre are dropped (once dropped, always dropped). ``floor`` is the expected noise of one
    value: with few frames the MAD is often 0 or tiny (equal quantised values), and a frame
    with a cosmic ray would then pass. Returns (mean, number kept).
    """
    n = vals.shape[0]
    m = 0
    for i in range(n):
        if math.isfinite(vals[i]):
            keep[i] = 1
            m += 1
        else:
            keep[i] = 0
    if m == 0:
        return np.nan, 0
    if m < 3:
        s = 0.0
        for i in range(n):
            if keep[i]:
                s += vals[i]
        return s / m, m
    j = 0
    for i in range(n):
        if keep[i]:
            buf[j] = vals[i]
            j += 1
    centre = _median_sorting(buf, m)
    for i in range(m):
        buf[i] = abs(buf[i] - centre)
    scale = max(1.4826 * _median_sorting(buf, m), floor)
    if scale <= 0.0:
        s = 0.0
        s2 = 0.0
        for i in range(n):
            if keep[i]:
                s += vals[i]
                s2 += vals[i] * vals[i]
        mean = s / m
        scale = math.sqrt(max(s2 / m - mean * mean, 0.0))
    for it in range(max(iterations, 1)):
        changed = False
        if scale > 0.0:
            for i in range(n):
                if keep[i] and abs(vals[i] - centre) > clip * scale:
                    keep[i] = 0
                    changed = True
        s = 0.0
        s2 = 0.0
        m = 0
        for i in range(n):
            if keep[i]:
                s += vals[i]
                s2 += vals[i] * vals[i]
                m += 1
        if m == 0:
            return np.nan, 0
        centre = s / m
        if m > 1:
            scale = max(math.sqrt(max((s2 - m * centre * centre) / (m - 1), 0.0)), floor)
        else:
            scale = floor
        if it > 0 and not changed:
            break
    return centre, m


@njit(parallel=True)
def clipped_mean_stack(stack, clip, iterations, floor):
    """Per-pixel sigma-clipped mean along axis 0 of a float32 ``(n, ny, nx)`` stack, with
    ``floor`` the smallest clipping scale (the expected noise of one frame's pixel).

    Returns ``(mean float32 (ny, nx), n_kept int16 (ny, nx))``; NaN where no value is left.
    Same values, bit for bit, as :func:`_clipped_mean_1d` pixel by pixel. Most pixels take a
    shortcut proven to give its result (the plain mean): one vectorised pass per row keeps,
    per pixel, the two smallest and two largest values, the sum and the sum of squares. The
    median lies between the second smallest and the second largest, so when
    ``max(hi - lo2, hi2 - lo) <= clip * floor`` the first (median/MAD) pass, whose scale is
    at least ``floor``, clips nothing; when also ``max(hi - mean, mean - lo) <= clip *
    max(std, floor)`` the second (mean/std) pass clips nothing either and the loop stops.
    """
    n, ny, nx = stack.shape
    out = np.empty((ny, nx), dtype=np.float32)
    nkept = np.empty((ny, nx), dtype=np.int16)
    cf = clip * floor
    nchunk = (ny + 31) // 32
    for ch in prange(nchunk):  # chunks of 32 rows: the row buffers are allocated once per chunk
        vals = np.empty(n, dtype=np.float64)
        keep = np.empty(n, dtype=np.uint8)
        buf = np.empty(n, dtype=np.float64)
        lo = np.empty(nx)
        lo2 = np.empty(nx)
        hi = np.empty(nx)
        hi2 = np.empty(nx)
        s = np.empty(nx)
        s2 = np.empty(nx)
        fast = np.zeros(nx, dtype=np.uint8)
        for y in range(ch * 32, min(ny, ch * 32 + 32)):
            _clipped_row(stack, y, n, nx, clip, iterations, floor, cf, out, nkept, vals, keep, buf,
                         lo, lo2, hi, hi2, s, s2, fast)
    return out, nkept


@njit(inline="always")
def _clipped_row(stack, y, n, nx, clip, iterations, floor, cf, out, nkept, vals, keep, buf,
                 lo, lo2, hi, hi2, s, s2, fast):
    """Row ``y`` of :func:`clipped_mean_stack` (scratch buffers passed in)."""
    lo[:] = np.inf
    lo2[:] = np.inf
    hi[:] = -np.inf
    hi2[:] = -np.inf
    s[:] = 0.0
    s2[:] = 0.0
    for i in range(n):
        src = stack[i, y]
        for x in range(nx):  # selects, no branches, one output pair per loop: vectorises
            v = np.float64(src[x])
            a = lo[x]
            m1 = v if v > a else a
            lo2[x] = m1 if m1 < lo2[x] else lo2[x]
            lo[x] = v if v < a else a
        for x in range(nx):
            v = np.float64(src[x])
            b = hi[x]
            m2 = v if v < b else b
            hi2[x] = m2 if m2 > hi2[x] else hi2[x]
            hi[x] = v if v > b else b
        for x in range(nx):
            v = np.float64(src[x])  # NaN makes s NaN: the pixel takes the full path
            s[x] += v
            s2[x] += v * v
    if n >= 3:
        for x in range(nx):
            c = s[x] / n
            var = (s2[x] - n * c * c) / (n - 1)
            sd = math.sqrt(var if var > 0.0 else 0.0)
            sd = sd if sd > floor else floor
            dev = hi[x] - c if hi[x] - c > c - lo[x] else c - lo[x]
            fast[x] = (np.uint8(abs(c) < np.inf)  # no NaN or inf among the values
                       & np.uint8(hi[x] - lo2[x] <= cf) & np.uint8(hi2[x] - lo[x] <= cf)
                       & np.uint8((iterations <= 1) | (dev <= clip * sd)))
            s[x] = c
    orow = out[y]
    krow = nkept[y]
    for x in range(nx):  # the shortcut's values everywhere, then the others overwritten
        orow[x] = s[x]
        krow[x] = n
    for x in range(nx):
        if fast[x]:
            continue
        for i in range(n):
            vals[i] = stack[i, y, x]
        mean, m = _clipped_mean_1d(vals, keep, buf, clip, iterations, floor)
        out[y, x] = mean
        nkept[y, x] = m


@njit
def clipped_stats(values, clip, iterations):
    """Sigma-clipped (mean, median, std) of a 1-d float array (NaN ignored), by the same rule
    as the stack: median/MAD first, then mean/std of the kept values."""
    v = values.ravel().astype(np.float64)
    keep = np.empty(v.shape[0], dtype=np.uint8)
    scratch = np.empty(v.shape[0], dtype=np.float64)
    mean, m = _clipped_mean_1d(v, keep, scratch, clip, iterations, 0.0)
    if m == 0:
        return np.nan, np.nan, np.nan
    buf = np.empty(m, dtype=np.float64)
    j = 0
    for i in range(v.shape[0]):
        if keep[i]:
            buf[j] = v[i]
            j += 1
    med = np.median(buf)
    s2 = 0.0
    for i in range(m):
        s2 += (buf[i] - mean) ** 2
    std = math.sqrt(s2 / max(m - 1, 1))
    return mean, med, std
