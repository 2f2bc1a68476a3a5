"""Numba kernels of image characterisation: PSF model rendering, PSF and aperture photometry,
windowed centroids and adaptive moments.

Pure functions on arrays (numpy, numba, math and :mod:`minidr._jit` only). Conventions:
arrays are indexed ``[y, x]``, pixel centres at integer 0-based coordinates, images in
electrons, variances in electrons^2. Background, convolution and labelling kernels live in
:mod:`minidr.image.detect_kernels`.
"""

from __future__ import annotations

import math

import numpy as np

from minidr._jit import njit, prange

# Half-size (pixels) of the central box in which the PSF model is sub-sampled 3x3 per pixel;
# outside it the profile is smooth enough to be sampled at pixel centres.
_OVERSAMPLE_HALF = 4


@njit(inline="always")
def _mask_flags(m, flag_bits_mask):
    """The source flags of mask value ``m``: OR of ``flag_bits_mask[b]`` over its set bits b."""
    fl = 0
    for b in range(flag_bits_mask.shape[0]):
        if m & (1 << b):
            fl |= flag_bits_mask[b]
    return fl


@njit
def moffat_inverse_shape(alpha, e1, e2):
    """Coefficients (a, b, c) of ``q = a dx^2 + 2 b dx dy + c dy^2`` for an elliptical Moffat.

    The profile's shape matrix is ``C = alpha^2 / s [[1+e1, e2], [e2, 1-e1]]``, ``s =
    sqrt(1 - e1^2 - e2^2)``, so ``det C = alpha^4`` and ``alpha`` is the geometric-mean core
    radius [pixels].
    """
    esq = e1 * e1 + e2 * e2
    if esq > 0.81:
        f = 0.9 / math.sqrt(esq)
        e1 *= f
        e2 *= f
        esq = 0.81
    s = math.sqrt(1.0 - esq)
    d = alpha * alpha * s
    return (1.0 - e1) / d, -e2 / d, (1.0 + e1) / d


@njit
def moffat_stamp(alpha, beta, e1, e2, fx, fy, radius):
    """Pixel-integrated elliptical Moffat on a ``(2r+1, 2r+1)`` stamp.

    The source sits at ``(fx, fy)`` pixels from the stamp's centre pixel. Values are
    fractions of the total flux (the profile integrates to 1 over the infinite plane), so
    the stamp sums to the enclosed fraction, slightly below 1. Pixels within
    ``_OVERSAMPLE_HALF`` of the centre are integrated by 3x3 sub-sampling (each sub-pixel with its
    Laplacian / 216 correction), the others by
    the centre value plus the analytic Laplacian / 24.
    """
    n = 2 * radius + 1
    out = np.empty((n, n), dtype=np.float64)
    a, b, c = moffat_inverse_shape(alpha, e1, e2)
    norm = (beta - 1.0) / (math.pi * alpha * alpha)
    for iy in range(n):
        dy = iy - radius - fy
        for ix in range(n):
            dx = ix - radius - fx
            if abs(ix - radius) <= _OVERSAMPLE_HALF and abs(iy - radius) <= _OVERSAMPLE_HALF:
                acc = 0.0
                for sy in range(3):
                    ddy = dy + (sy - 1) / 3.0
                    for sx in range(3):
                        ddx = dx + (sx - 1) / 3.0
                        q = a * ddx * ddx + 2.0 * b * ddx * ddy + c * ddy * ddy
                        u = 1.0 + q
                        gx = 2.0 * (a * ddx + b * ddy)
                        gy = 2.0 * (b * ddx + c * ddy)
                        f0 = u ** (-beta)
                        lap = beta * f0 / (u * u) * ((beta + 1.0) * (gx * gx + gy * gy) - u * 2.0 * (a + c))
                        acc += f0 + lap / 216.0
                out[iy, ix] = norm * acc / 9.0
            else:
                # pixel integral ~ f + (f_xx + f_yy) / 24 (second-order midpoint rule)
                q = a * dx * dx + 2.0 * b * dx * dy + c * dy * dy
                u = 1.0 + q
                gx = 2.0 * (a * dx + b * dy)
                gy = 2.0 * (b * dx + c * dy)
                f0 = u ** (-beta)
                lap = beta * f0 / (u * u) * ((beta + 1.0) * (gx * gx + gy * gy) - u * 2.0 * (a + c))
                out[iy, ix] = norm * (f0 + lap / 24.0)
    return out


@njit
def moffat_stamps(alpha, beta, e1, e2, fx, fy, radius):
    """Many :func:`moffat_stamp` at once: arrays of parameters in, ``(n, 2r+1, 2r+1)`` out."""
    n = alpha.shape[0]
    m = 2 * radius + 1
    out = np.empty((n, m, m), dtype=np.float64)
    for i in range(n):
        out[i] = moffat_stamp(alpha[i], beta[i], e1[i], e2[i], fx[i], fy[i], radius)
    return out


@njit(parallel=True)
def psf_flux_kernel(image, variance, mask, xs, ys, alpha, beta, e1, e2, radius,
                    excl_bits, flag_bits_mask, edge_flag):
    """Fixed-position PSF photometry of many sources.

    For each source the PSF model P (fractions of total flux, see :func:`moffat_stamp`) is
    fitted by linear least squares with uniform weights over the stamp:
    ``F = sum(P d) / sum(P^2)``, ``err = sqrt(sum(P^2 v)) / sum(P^2)``. Uniform weights keep
    the estimate unbiased (weights from a variance containing the source's own photons, or
    the data's noise, bias it); for background-dominated sources they are optimal.

    Pixels whose mask has any of ``excl_bits`` are left out; ``flag_bits_mask`` maps mask
    bits (index = bit number) to flag bits OR-ed into the source flags when such a pixel
    lies where P > 1e-3 of the peak... (any pixel of the stamp with P >= 0.001 max(P));
    ``edge_flag`` is set when part of that region is off the image.

    Returns flux [e-], flux_err [e-], peak model fraction, flags (int32) and
    ``sharp``: the centre pixel value divided by the fitted model's value there.
    """
    n = xs.shape[0]
    ny, nx = image.shape
    flux = np.empty(n)
    ferr = np.empty(n)
    pmax_out = np.empty(n)
    sharp = np.empty(n)
    flags = np.zeros(n, dtype=np.int32)
    for i in prange(n):
        x = xs[i]
        y = ys[i]
        cx = int(math.floor(x + 0.5))
        cy = int(math.floor(y + 0.5))
        p = moffat_stamp(alpha[i], beta[i], e1[i], e2[i], x - cx, y - cy, radius)
        pm = 0.0
        for iy in range(p.shape[0]):
            for ix in range(p.shape[1]):
                if p[iy, ix] > pm:
                    pm = p[iy, ix]
        sw = 0.0
        spd = 0.0
        spv = 0.0
        fl = 0
        for iy in range(p.shape[0]):
            yy = cy + iy - radius
            for ix in range(p.shape[1]):
                xx = cx + ix - radius
                pv = p[iy, ix]
                important = pv >= 1e-3 * pm
                if yy < 0 or yy >= ny or xx < 0 or xx >= nx:
                    if important:
                        fl |= edge_flag
                    continue
                m = mask[yy, xx]
                if m != 0 and important:
                    fl |= _mask_flags(m, flag_bits_mask)
                if m & excl_bits:
                    continue
                d = image[yy, xx]
                v = variance[yy, xx]
                if not (math.isfinite(d) and math.isfinite(v)):
                    continue
                sw += pv * pv
                spd += pv * d
                spv += pv * pv * v
        if sw > 0.0:
            f = spd / sw
            flux[i] = f
            ferr[i] = math.sqrt(spv) / sw
        else:
            flux[i] = np.nan
            ferr[i] = np.nan
        pmax_out[i] = pm
        c0 = p[radius, radius]
        if 0 <= cy < ny and 0 <= cx < nx and sw > 0.0 and flux[i] > 0.0:
            sharp[i] = image[cy, cx] / (flux[i] * c0)
        else:
            sharp[i] = np.nan
        flags[i] = fl
    return flux, ferr, pmax_out, flags, sharp


# --- exact circular apertures ---------------------------------------------------------------


@njit
def _chord_integral(x, r):
    """Integral of sqrt(r^2 - t^2) dt from 0 to x, for |x| <= r."""
    if x >= r:
        return 0.25 * math.pi * r * r
    if x <= -r:
        return -0.25 * math.pi * r * r
    return 0.5 * (x * math.sqrt(r * r - x * x) + r * r * math.asin(x / r))


@njit(inline="always")
def _strip_area(a, b, r, y0, y1):
    """Area of the circle of radius r at the origin inside ``[a, b] x [y0, y1]`` when no
    circle crossing of y = y0 or y = y1 lies strictly between a and b (0 when b <= a)."""
    if b <= a:
        return 0.0
    m = 0.5 * (a + b)
    s = math.sqrt(max(r * r - m * m, 0.0))
    hi_is_s = s <= y1
    lo_is_s = -s >= y0
    hi = s if hi_is_s else y1
    lo = -s if lo_is_s else y0
    if hi <= lo:
        return 0.0
    ci = _chord_integral(b, r) - _chord_integral(a, r)
    ih = ci if hi_is_s else y1 * (b - a)
    il = -ci if lo_is_s else y0 * (b - a)
    return ih - il


@njit
def circle_rect_overlap(x0, x1, y0, y1, r):
    """Exact area of the circle of radius r at the origin inside ``[x0,x1] x [y0,y1]``.

    The x range is cut where the circle crosses y = y0 or y = y1 (at +-s0, +-s1, visited
    in ascending order -smax, -smin, smin, smax without sorting or allocating); on each
    piece the upper and lower bounds are either the circle or a side of the rectangle."""
    if x1 <= -r or x0 >= r or y1 <= -r or y0 >= r:
        return 0.0
    lo = max(x0, -r)
    hi = min(x1, r)
    s0 = math.sqrt(r * r - y0 * y0) if abs(y0) < r else -1.0
    s1 = math.sqrt(r * r - y1 * y1) if abs(y1) < r else -1.0
    smin = min(s0, s1)
    smax = max(s0, s1)
    area = 0.0
    prev = lo
    for k in range(4):
        if k == 0:
            t = -smax
            ok = smax >= 0.0
        elif k == 1:
            t = -smin
            ok = smin >= 0.0
        elif k == 2:
            t = smin
            ok = smin >= 0.0
        else:
            t = smax
            ok = smax >= 0.0
        if ok and lo < t < hi:
            area += _strip_area(prev, t, r, y0, y1)
            prev = t
    area += _strip_area(prev, hi, r, y0, y1)
    return area


@njit(inline="always")
def _aperture_sum(image, variance, mask, x, y, r, excl_bits, flag_bits_mask, edge_flag, wbox, iy0, ix0):
    """Exact-circle aperture of radius ``r`` [pixels] at (x, y): (sum w d [e-], sum w^2 v
    [e-^2], sum w [pixel^2], flags), w the pixel/circle overlap areas; masked (``excl_bits``)
    and non-finite pixels left out, mask bits mapped to flags by ``flag_bits_mask``, pixels
    off the image flag ``edge_flag``. When ``wbox`` is not empty, each used pixel's weight is
    stored at ``wbox[yy - iy0, xx - ix0]``."""
    ny, nx = image.shape
    record = wbox.shape[0] > 0
    ix0a = int(math.floor(x - r + 0.5))
    ix1a = int(math.floor(x + r + 0.5))
    iy0a = int(math.floor(y - r + 0.5))
    iy1a = int(math.floor(y + r + 0.5))
    rin = r - 0.7072
    rout = r + 0.7072
    f = 0.0
    v = 0.0
    a = 0.0
    fl = 0
    for yy in range(iy0a, iy1a + 1):
        dy = yy - y
        for xx in range(ix0a, ix1a + 1):
            dx = xx - x
            d2 = dx * dx + dy * dy
            if d2 >= rout * rout:
                continue
            if rin > 0 and d2 <= rin * rin:
                w = 1.0
            else:
                w = circle_rect_overlap(dx - 0.5, dx + 0.5, dy - 0.5, dy + 0.5, r)
            if w <= 0.0:
                continue
            if yy < 0 or yy >= ny or xx < 0 or xx >= nx:
                fl |= edge_flag
                continue
            m = mask[yy, xx]
            if m != 0:
                fl |= _mask_flags(m, flag_bits_mask)
            if m & excl_bits:
                continue
            d = image[yy, xx]
            vv = variance[yy, xx]
            if not (math.isfinite(d) and math.isfinite(vv)):
                continue
            f += w * d
            v += w * w * vv
            a += w
            if record:
                wbox[yy - iy0, xx - ix0] = w
    return f, v, a, fl


@njit(parallel=True)
def aperture_flux_kernel(image, variance, mask, xs, ys, radius, excl_bits,
                         flag_bits_mask, edge_flag):
    """Sum of pixels within an exact circle (pixel fractions by exact overlap area).

    Masked pixels (``excl_bits``) and non-finite ones are left out; mask bits inside the
    aperture are mapped to flags by ``flag_bits_mask``. Returns flux [e-], err [e-],
    covered area [pixel^2] and flags. ``radius`` is an array (one per source) [pixels].
    """
    n = xs.shape[0]
    flux = np.zeros(n)
    ferr = np.zeros(n)
    area = np.zeros(n)
    flags = np.zeros(n, dtype=np.int32)
    no_weights = np.zeros((0, 0))
    for i in prange(n):
        f, v, a, fl = _aperture_sum(image, variance, mask, xs[i], ys[i], radius[i], excl_bits, flag_bits_mask,
                                    edge_flag, no_weights, 0, 0)
        flux[i] = f
        ferr[i] = math.sqrt(v)
        area[i] = a
        flags[i] = fl
    return flux, ferr, area, flags


# --- centroids and moments ------------------------------------------------------------------


@njit(parallel=True)
def windowed_centroid_kernel(image, variance, mask, xs, ys, sigma, excl_bits, maxiter, tol):
    """Gaussian-windowed centroids (SExtractor XWIN style), iterated to convergence.

    ``x_{n+1} = x_n + 2 sum(w I dx) / sum(w I)`` with a circular Gaussian window of
    ``sigma`` pixels (for a Gaussian source of the same width this is its exact centre; for
    any symmetric source the fixed point is its centre of symmetry). Errors by propagating
    the noise through the fixed-point condition ``sum(w I dx) = 0``:
    ``var(x) = sum(w^2 v dx^2) / (sum w I (1 - dx^2 / sigma^2))^2`` (for a Gaussian source
    matching the window this is ``4 sum(w^2 v dx^2) / (sum w I)^2``). Returns x, y, xerr, yerr, converged (bool).
    The window radius is 4 sigma; steps are limited to 1 pixel per iteration.
    """
    n = xs.shape[0]
    ny, nx = image.shape
    ox = np.empty(n)
    oy = np.empty(n)
    ex = np.empty(n)
    ey = np.empty(n)
    ok = np.zeros(n, dtype=np.bool_)
    for i in prange(n):
        x = xs[i]
        y = ys[i]
        s2 = sigma[i] * sigma[i]
        rad = int(math.ceil(4.0 * sigma[i]))
        # the window exp(-r^2 / 2 s^2) is the product of a column and a row factor
        colw = np.empty(2 * rad + 1)
        conv = False
        sxv = 0.0
        syv = 0.0
        swi = 0.0
        dnx = 0.0
        dny = 0.0
        for it in range(maxiter):
            cx = int(math.floor(x + 0.5))
            cy = int(math.floor(y + 0.5))
            swi = 0.0
            swix = 0.0
            swiy = 0.0
            sxv = 0.0
            syv = 0.0
            dnx = 0.0
            dny = 0.0
            x0 = max(cx - rad, 0)
            x1 = min(cx + rad + 1, nx)
            for xx in range(x0, x1):
                dx = xx - x
                colw[xx - x0] = math.exp(-0.5 * dx * dx / s2)
            for yy in range(max(cy - rad, 0), min(cy + rad + 1, ny)):
                dy = yy - y
                roww = math.exp(-0.5 * dy * dy / s2)
                for xx in range(x0, x1):
                    if mask[yy, xx] & excl_bits:
                        continue
                    d = image[yy, xx]
                    if not math.isfinite(d):
                        continue
                    dx = xx - x
                    r2 = dx * dx + dy * dy
                    if r2 > 16.0 * s2:
                        continue
                    w = colw[xx - x0] * roww
                    swi += w * d
                    swix += w * d * dx
                    swiy += w * d * dy
                    vv = variance[yy, xx]
                    sxv += w * w * vv * dx * dx
                    syv += w * w * vv * dy * dy
                    dnx += w * d * (1.0 - dx * dx / s2)
                    dny += w * d * (1.0 - dy * dy / s2)
            if swi <= 0.0:
                break
            stepx = 2.0 * swix / swi
            stepy = 2.0 * swiy / swi
            if stepx > 1.0:
                stepx = 1.0
            elif stepx < -1.0:
                stepx = -1.0
            if stepy > 1.0:
                stepy = 1.0
            elif stepy < -1.0:
                stepy = -1.0
            x += stepx
            y += stepy
            if abs(stepx) < tol and abs(stepy) < tol:
                conv = True
                break
        if conv and abs(x - xs[i]) < 3.0 * sigma[i] + 1.0 and abs(y - ys[i]) < 3.0 * sigma[i] + 1.0:
            ox[i] = x
            oy[i] = y
            ex[i] = math.sqrt(max(sxv, 0.0)) / abs(dnx) if dnx != 0.0 else np.nan
            ey[i] = math.sqrt(max(syv, 0.0)) / abs(dny) if dny != 0.0 else np.nan
            ok[i] = True
        else:
            ox[i] = xs[i]
            oy[i] = ys[i]
            ex[i] = np.nan
            ey[i] = np.nan
    return ox, oy, ex, ey, ok


@njit(parallel=True)
def adaptive_moments_kernel(image, mask, xs, ys, sigma0, excl_bits, maxiter, tol):
    """Adaptive second moments (Bernstein & Jarvis 2002) at fixed centres.

    The elliptical Gaussian weight W is iterated to ``W = 2 M_w(W)`` where ``M_w`` are the
    W-weighted second moments of the image; at the fixed point W equals the covariance of
    a Gaussian source. Returns ixx, iyy, ixy [pixel^2] and converged (bool). The weight
    (cut at q = 16, q the Mahalanobis distance squared) is summed only over each row's
    columns where q <= 16, and, unless the ellipse is very elongated, evaluated as a
    column factor times a row factor times a geometric sequence for the cross term (one
    exp per row and column, none per pixel; equal to the direct exp to ~1e-14).
    """
    n = xs.shape[0]
    ny, nx = image.shape
    oxx = np.empty(n)
    oyy = np.empty(n)
    oxy = np.empty(n)
    ok = np.zeros(n, dtype=np.bool_)
    for i in prange(n):
        x = xs[i]
        y = ys[i]
        wxx = sigma0[i] * sigma0[i]
        wyy = wxx
        wxy = 0.0
        conv = False
        colf = np.empty(2 * 80 + 1)  # rad <= 80 while wxx, wyy <= 400
        for it in range(maxiter):
            det = wxx * wyy - wxy * wxy
            if det <= 0.0 or wxx > 400.0 or wyy > 400.0:
                break
            ia = wyy / det
            ib = -wxy / det
            ic = wxx / det
            rad = int(math.ceil(4.0 * math.sqrt(max(wxx, wyy))))
            cx = int(math.floor(x + 0.5))
            cy = int(math.floor(y + 0.5))
            x0 = max(cx - rad, 0)
            x1 = min(cx + rad + 1, nx)
            y0 = max(cy - rad, 0)
            # factorised weight when the cross term stays moderate (|correlation| < 0.89):
            # exp(-q/2) = colf(dx) * exp(-ic dy^2 / 2 - ib dy dx_lo) * exp(-ib dy)^(dx - dx_lo)
            fast = ib * ib < 0.8 * ia * ic
            ratio = 1.0
            rstep = 1.0
            if fast:
                for xx in range(x0, x1):
                    dx = xx - x
                    colf[xx - x0] = math.exp(-0.5 * ia * dx * dx)
                ratio = math.exp(-ib * (y0 - y))
                rstep = math.exp(-ib)
            s0 = 0.0
            sxx = 0.0
            syy = 0.0
            sxy = 0.0
            for yy in range(y0, min(cy + rad + 1, ny)):
                dy = yy - y
                rat = ratio
                ratio *= rstep
                # the columns where q <= 16 on this row, one pixel of margin
                bq = ib * dy
                disc = bq * bq - ia * (ic * dy * dy - 16.0)
                if disc < 0.0:
                    continue
                sq = math.sqrt(disc)
                lo = max(x0, int(math.floor(x + (-bq - sq) / ia)) - 1)
                hi = min(x1, int(math.floor(x + (-bq + sq) / ia)) + 2)
                g = math.exp(-0.5 * ic * dy * dy - bq * (lo - x)) if fast else 1.0
                r0 = 0.0
                rx = 0.0
                rxx = 0.0
                for xx in range(lo, hi):
                    gcur = g
                    g *= rat
                    if mask[yy, xx] & excl_bits:
                        continue
                    d = image[yy, xx]
                    if not math.isfinite(d):
                        continue
                    dx = xx - x
                    q = ia * dx * dx + 2.0 * bq * dx + ic * dy * dy
                    if q > 16.0:
                        continue
                    if fast:
                        w = colf[xx - x0] * gcur * d
                    else:
                        w = math.exp(-0.5 * q) * d
                    r0 += w
                    rx += w * dx
                    rxx += w * dx * dx
                s0 += r0
                sxx += rxx
                syy += r0 * dy * dy
                sxy += rx * dy
            if s0 <= 0.0:
                break
            nxx = 2.0 * sxx / s0
            nyy = 2.0 * syy / s0
            nxy = 2.0 * sxy / s0
            if nxx <= 0.0 or nyy <= 0.0 or nxx * nyy - nxy * nxy <= 0.0:
                break
            dif = abs(nxx - wxx) + abs(nyy - wyy) + abs(nxy - wxy)
            wxx = nxx
            wyy = nyy
            wxy = nxy
            if dif < tol * (wxx + wyy):
                conv = True
                break
        if conv:
            oxx[i] = wxx
            oyy[i] = wyy
            oxy[i] = wxy
            ok[i] = True
        else:
            oxx[i] = np.nan
            oyy[i] = np.nan
            oxy[i] = np.nan
    return oxx, oyy, oxy, ok


@njit
def render_psf_models(ny, nx, xs, ys, flux, alpha, beta, e1, e2, radius):
    """A float32 (ny, nx) image of ``sum_i flux_i P_i`` (PSF models on stamps of ``radius``),
    sources with a non-finite or non-positive flux left out."""
    out = np.zeros((ny, nx), dtype=np.float32)
    for i in range(xs.shape[0]):
        f = flux[i]
        if not (math.isfinite(f) and f > 0.0 and math.isfinite(xs[i]) and math.isfinite(ys[i])):
            continue
        cx = int(math.floor(xs[i] + 0.5))
        cy = int(math.floor(ys[i] + 0.5))
        p = moffat_stamp(alpha[i], beta[i], e1[i], e2[i], xs[i] - cx, ys[i] - cy, radius)
        for iy in range(p.shape[0]):
            yy = cy + iy - radius
            if yy < 0 or yy >= ny:
                continue
            for ix in range(p.shape[1]):
                xx = cx + ix - radius
                if xx < 0 or xx >= nx:
                    continue
                out[yy, xx] += f * p[iy, ix]
    return out


@njit(parallel=True)
def moffat_stamps_f32(alpha, beta, e1, e2, xs, ys, radius):
    """:func:`moffat_stamp` of many sources at (xs, ys) [pixels] (each centred on the pixel
    ``floor(x + 0.5), floor(y + 0.5)``), as a float32 ``(n, 2r+1, 2r+1)`` array."""
    n = xs.shape[0]
    m = 2 * radius + 1
    out = np.empty((n, m, m), dtype=np.float32)
    for i in prange(n):
        cx = math.floor(xs[i] + 0.5)
        cy = math.floor(ys[i] + 0.5)
        s = moffat_stamp(alpha[i], beta[i], e1[i], e2[i], xs[i] - cx, ys[i] - cy, radius)
        for iy in range(m):
            for ix in range(m):
                out[i, iy, ix] = s[iy, ix]
    return out


@njit(parallel=True)
def neighbour_photometry_kernel(image, variance, mask, xs, ys, stamps, radius, groups,
                                nb_start, nb_idx, ap_radius, todo, excl_bits, flag_bits_mask, edge_flag):
    """PSF and aperture photometry of many sources with the overlaps of their neighbours'
    PSF models, from which blends and neighbour subtraction are solved algebraically.

    ``stamps`` (n, 2R+1, 2R+1) are the PSF models P_j (fractions of the total flux, see
    :func:`moffat_stamps_f32`, R = ``stamps.shape[1] // 2``) centred on pixel
    ``floor(x + 0.5), floor(y + 0.5)``; the PSF fit of source i uses the central
    ``(2 radius + 1)^2`` part of its own stamp. ``nb_idx[nb_start[i]:nb_start[i+1]]`` lists
    the neighbours j of i (i itself included) whose stamps may overlap i's fit stamp or
    aperture. Valid pixels: on the image, no ``excl_bits``, finite value and variance.

    Per source: ``spd = sum P_i d``, ``sw = sum P_i^2``, ``spv = sum P_i^2 v`` over i's fit
    stamp (so ``spd / sw`` [e-] is the single-source PSF flux and ``sqrt(spv) / sw`` its
    error), PSF flags (as :func:`psf_flux_kernel`), sharpness numerator-free pieces
    (centre pixel value [e-] and the model's centre value), the exact-circle aperture flux,
    its error [e-] and flags (as :func:`aperture_flux_kernel`, radius ``ap_radius[i]``).
    Per pair (i, j), aligned with ``nb_idx``: ``C = sum P_i P_j`` over i's fit stamp (P_j on
    its whole stamp), ``A = sum w_i P_j`` over i's aperture (w the exact overlap weights),
    and when ``groups[i] == groups[j]``: ``G = sum P_i P_j`` and ``H = sum P_i P_j v`` with
    both on their fit stamps (the normal equations of a simultaneous fit).
    Only the sources ``todo`` (indices) are measured: the other rows stay 0 (NaN centre).
    """
    n = xs.shape[0]
    ny, nx = image.shape
    R = stamps.shape[1] // 2
    r = radius
    npair = nb_idx.shape[0]
    C = np.zeros(npair)
    A = np.zeros(npair)
    G = np.zeros(npair)
    H = np.zeros(npair)
    spd = np.zeros(n)
    sw = np.zeros(n)
    spv = np.zeros(n)
    centre = np.full(n, np.nan)
    c0 = np.zeros(n)
    pflags = np.zeros(n, dtype=np.int32)
    af = np.zeros(n)
    av = np.zeros(n)
    aflags = np.zeros(n, dtype=np.int32)
    for t in prange(todo.shape[0]):
        i = todo[t]
        cx = math.floor(xs[i] + 0.5)
        cy = math.floor(ys[i] + 0.5)
        # --- own PSF fit stamp
        pm = 0.0
        for iy in range(R - r, R + r + 1):
            for ix in range(R - r, R + r + 1):
                pm = max(pm, float(stamps[i, iy, ix]))
        fl = 0
        a1 = 0.0
        a2 = 0.0
        a3 = 0.0
        for iy in range(-r, r + 1):
            yy = cy + iy
            for ix in range(-r, r + 1):
                xx = cx + ix
                pv = float(stamps[i, R + iy, R + ix])
                important = pv >= 1e-3 * pm
                if yy < 0 or yy >= ny or xx < 0 or xx >= nx:
                    if important:
                        fl |= edge_flag
                    continue
                m = mask[yy, xx]
                if m != 0 and important:
                    fl |= _mask_flags(m, flag_bits_mask)
                if m & excl_bits:
                    continue
                d = image[yy, xx]
                v = variance[yy, xx]
                if not (math.isfinite(d) and math.isfinite(v)):
                    continue
                a1 += pv * d
                a2 += pv * pv
                a3 += pv * pv * v
        spd[i] = a1
        sw[i] = a2
        spv[i] = a3
        pflags[i] = fl
        c0[i] = stamps[i, R, R]
        if 0 <= cy < ny and 0 <= cx < nx:
            centre[i] = image[cy, cx]
        # --- aperture: exact overlap weights on a local box
        x = xs[i]
        y = ys[i]
        ra = ap_radius[i]
        ix0 = math.floor(x - ra + 0.5)
        ix1 = math.floor(x + ra + 0.5)
        iy0 = math.floor(y - ra + 0.5)
        iy1 = math.floor(y + ra + 0.5)
        wbox = np.zeros((iy1 - iy0 + 1, ix1 - ix0 + 1))
        f, vv, _, fl = _aperture_sum(image, variance, mask, x, y, ra, excl_bits, flag_bits_mask, edge_flag,
                                     wbox, iy0, ix0)
        af[i] = f
        av[i] = vv
        aflags[i] = fl
        # --- overlaps with the neighbours' models
        for k in range(nb_start[i], nb_start[i + 1]):
            j = nb_idx[k]
            jx = math.floor(xs[j] + 0.5)
            jy = math.floor(ys[j] + 0.5)
            same = groups[i] == groups[j]
            # fit stamp of i against the whole stamp of j (and j's fit stamp when same group)
            c = 0.0
            g = 0.0
            h = 0.0
            for yy in range(max(cy - r, jy - R, 0), min(cy + r, jy + R, ny - 1) + 1):
                for xx in range(max(cx - r, jx - R, 0), min(cx + r, jx + R, nx - 1) + 1):
                    if mask[yy, xx] & excl_bits:
                        continue
                    d = image[yy, xx]
                    v = variance[yy, xx]
                    if not (math.isfinite(d) and math.isfinite(v)):
                        continue
                    pij = float(stamps[i, R + yy - cy, R + xx - cx]) * float(stamps[j, R + yy - jy, R + xx - jx])
                    c += pij
                    if same and abs(yy - jy) <= r and abs(xx - jx) <= r:
                        g += pij
                        h += pij * v
            C[k] = c
            G[k] = g
            H[k] = h
            a = 0.0
            for yy in range(max(iy0, jy - R, 0), min(iy1, jy + R, ny - 1) + 1):
                for xx in range(max(ix0, jx - R, 0), min(ix1, jx + R, nx - 1) + 1):
                    w = wbox[yy - iy0, xx - ix0]
                    if w > 0.0:
                        a += w * float(stamps[j, R + yy - jy, R + xx - jx])
            A[k] = a
    return spd, sw, spv, pflags, centre, c0, af, np.sqrt(av), aflags, C, A, G, H


@njit
def _inverse(a):
    """Inverse of a small square matrix by Gauss-Jordan elimination with partial pivoting;
    (inverse, ok) with ok False when a pivot falls below 1e-12 of the largest diagonal."""
    k = a.shape[0]
    m = a.copy()
    inv = np.eye(k)
    scale = 0.0
    for t in range(k):
        scale = max(scale, abs(m[t, t]))
    if not scale > 0.0:
        return inv, False
    for c in range(k):
        p = c
        for t in range(c + 1, k):
            if abs(m[t, c]) > abs(m[p, c]):
                p = t
        if abs(m[p, c]) <= 1e-12 * scale:
            return inv, False
        if p != c:
            for t in range(k):
                m[c, t], m[p, t] = m[p, t], m[c, t]
                inv[c, t], inv[p, t] = inv[p, t], inv[c, t]
        piv = m[c, c]
        for t in range(k):
            m[c, t] /= piv
            inv[c, t] /= piv
        for rr in range(k):
            if rr != c and m[rr, c] != 0.0:
                fct = m[rr, c]
                for t in range(k):
                    m[rr, t] -= fct * m[c, t]
                    inv[rr, t] -= fct * inv[c, t]
    return inv, True


@njit
def blend_solve(members, starts, nb_start, nb_idx, G, H, spd):
    """Simultaneous fixed-position PSF fit of the members of each group.

    ``members[starts[g]:starts[g+1]]`` are the source indices of group g; ``G``, ``H`` the
    pair overlaps of :func:`neighbour_photometry_kernel` and ``spd`` its ``sum P_i d``.
    Solves ``G F = spd`` per group; errors from ``G^-1 H G^-1``. Returns (flux, err) [e-]
    for every source: NaN outside groups of 2+ members or when G is singular.
    """
    n = spd.shape[0]
    flux = np.full(n, np.nan)
    err = np.full(n, np.nan)
    pos = np.full(n, -1, dtype=np.int64)
    for gi in range(starts.shape[0] - 1):
        s = starts[gi]
        e = starts[gi + 1]
        k = e - s
        if k < 2:
            continue
        for t in range(k):
            pos[members[s + t]] = t
        a = np.zeros((k, k))
        hv = np.zeros((k, k))
        b = np.zeros(k)
        for t in range(k):
            i = members[s + t]
            b[t] = spd[i]
            for q in range(nb_start[i], nb_start[i + 1]):
                u = pos[nb_idx[q]]
                if u >= 0:
                    a[t, u] = G[q]
                    hv[t, u] = H[q]
        ai, ok = _inverse(a)
        for t in range(k):
            pos[members[s + t]] = -1
        if not ok:
            continue
        f = ai @ b
        cov = ai @ hv @ ai
        for t in range(k):
            i = members[s + t]
            flux[i] = f[t]
            err[i] = math.sqrt(max(cov[t, t], 0.0))
    return flux, err


@njit(parallel=True)
def moffat_stamp_derivatives(alpha, beta, e1, e2, fx, fy, radius):
    """Derivatives of :func:`moffat_stamp` (without its second-order pixel-integration
    terms: a Jacobian for Gauss-Newton steps, not a model) with respect to
    ``(log alpha, beta, e1, e2)``: float64 array ``(n, 4, 2r+1, 2r+1)`` [fraction of the
    total flux per unit parameter]; the same 3x3 sub-sampling of the core pixels."""
    n = alpha.shape[0]
    m = 2 * radius + 1
    out = np.zeros((n, 4, m, m))
    for i in prange(n):
        al = alpha[i]
        be = beta[i]
        a, b, c = moffat_inverse_shape(al, e1[i], e2[i])
        esq = min(e1[i] * e1[i] + e2[i] * e2[i], 0.81)
        s = math.sqrt(1.0 - esq)
        d0 = al * al * s
        norm = (be - 1.0) / (math.pi * al * al)
        for iy in range(m):
            dy = iy - radius - fy[i]
            for ix in range(m):
                dx = ix - radius - fx[i]
                ns = 3 if (abs(ix - radius) <= _OVERSAMPLE_HALF and abs(iy - radius) <= _OVERSAMPLE_HALF) else 1
                g0 = 0.0
                g1 = 0.0
                g2 = 0.0
                g3 = 0.0
                for sy in range(ns):
                    ddy = dy + (sy - 1) / 3.0 if ns == 3 else dy
                    for sx in range(ns):
                        ddx = dx + (sx - 1) / 3.0 if ns == 3 else dx
                        q = a * ddx * ddx + 2.0 * b * ddx * ddy + c * ddy * ddy
                        u = 1.0 + q
                        f0 = u ** (-be)
                        dfdq = -be * f0 / u
                        g0 += f0 * (-2.0) + dfdq * (-2.0 * q)
                        g1 += f0 * (1.0 / (be - 1.0) - math.log(u))
                        g2 += dfdq * ((ddy * ddy - ddx * ddx) / d0 + q * e1[i] / (s * s))
                        g3 += dfdq * (-2.0 * ddx * ddy / d0 + q * e2[i] / (s * s))
                k = norm / (ns * ns)
                out[i, 0, iy, ix] = g0 * k
                out[i, 1, iy, ix] = g1 * k
                out[i, 2, iy, ix] = g2 * k
                out[i, 3, iy, ix] = g3 * k
    return out


@njit(parallel=True)
def render_stamps(ny, nx, xs, ys, flux, stamps):
    """A float32 (ny, nx) image of ``sum_i flux_i S_i`` for precomputed stamps ``S_i``
    (``(n, 2R+1, 2R+1)``, centred on pixel ``floor(x + 0.5), floor(y + 0.5)``, as from
    :func:`moffat_stamps_f32`), sources with a non-finite or non-positive flux left out.
    Bands of 64 rows in parallel, each adding the stamps in source order (the same sums as
    one thread)."""
    out = np.zeros((ny, nx), dtype=np.float32)
    R = stamps.shape[1] // 2
    nband = (ny + 63) // 64
    for band in prange(nband):
        b0 = band * 64
        b1 = min(ny, b0 + 64)
        for i in range(xs.shape[0]):
            f = flux[i]
            if not (math.isfinite(f) and f > 0.0 and math.isfinite(xs[i]) and math.isfinite(ys[i])):
                continue
            cy = math.floor(ys[i] + 0.5)
            if cy + R < b0 or cy - R >= b1:
                continue
            cx = math.floor(xs[i] + 0.5)
            for iy in range(max(0, R - cy, b0 - cy + R), min(2 * R + 1, ny - cy + R, b1 - cy + R)):
                yy = cy + iy - R
                for ix in range(max(0, R - cx), min(2 * R + 1, nx - cx + R)):
                    out[yy, cx + ix - R] += f * stamps[i, iy, ix]
    return out


@njit
def count_usable(image, mask, excl_bits, sat_bit):
    """(finite pixels, finite pixels without ``excl_bits``, pixels with ``sat_bit``) of an
    image and its MaskBit plane, in one pass."""
    ny, nx = image.shape
    nfin = 0
    nuse = 0
    nsat = 0
    for y in range(ny):
        for x in range(nx):
            m = mask[y, x]
            if m & sat_bit:
                nsat += 1
            if math.isfinite(image[y, x]):
                nfin += 1
                if not (m & excl_bits):
                    nuse += 1
    return nfin, nuse, nsat
