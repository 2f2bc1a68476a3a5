"""Numba kernels of the simulator: pure functions on arrays (no files, no config objects).

Units: positions and lengths in pixels (0-based, pixel centres at integers, arrays
``[y, x]``), fluxes in electrons. Each object is drawn into its own square stamp
``(2R+1) x (2R+1)`` centred on the pixel nearest its position; the stamps are computed in
parallel (one object per thread, each into its own slice of a flat buffer) and then added
to the image serially, so the result does not depend on the number of threads.
"""

from __future__ import annotations

import math

import numpy as np

from minidr._jit import njit, prange


@njit
def _moffat_cell(dx, dy, a11, a12, a22, inv_alpha2, beta, h):
    """Mean of the Moffat profile over an h x h cell centred at (dx, dy): the centre value plus
    h^2/24 of its Laplacian (error O(h^4))."""
    gx = a11 * dx + a12 * dy
    gy = a12 * dx + a22 * dy
    opu = 1.0 + (dx * gx + dy * gy) * inv_alpha2
    lap_u = 2.0 * (a11 + a22) * inv_alpha2
    grad2 = 4.0 * (gx * gx + gy * gy) * inv_alpha2 * inv_alpha2
    lap = -beta * lap_u / opu + beta * (beta + 1.0) * grad2 / (opu * opu)
    return opu ** (-beta) * (1.0 + h * h * lap / 24.0)


@njit(parallel=True)
def moffat_stamps(x, y, flux, alpha, beta, a11, a12, a22, radius, offsets, oversample,
                  os_radius, out):
    """Pixel-integrated elliptical Moffat stamps, each normalised to sum to ``flux``.

    ``I ~ (1 + d^T A d / alpha^2)^-beta`` with ``A = [[a11, a12], [a12, a22]]`` (det 1).
    Each pixel (or, within ``os_radius[i]`` of the object, each of ``oversample x oversample``
    sub-cells) is integrated as its centre value plus h^2/24 of the Laplacian, so pixels are
    integrated to better than 0.5% (0.1% for FWHM >= 4 px).
    Stamp ``i`` occupies ``out[offsets[i]:offsets[i] + (2R+1)**2]``, row-major, its
    pixel (0, 0) at detector pixel ``(round(y) - R, round(x) - R)``.
    """
    n = x.shape[0]
    for i in prange(n):
        r = radius[i]
        side = 2 * r + 1
        cx = np.floor(x[i] + 0.5)
        cy = np.floor(y[i] + 0.5)
        fx = x[i] - cx
        fy = y[i] - cy
        inv_a2 = 1.0 / (alpha[i] * alpha[i])
        b = beta[i]
        o = offsets[i]
        s = 0.0
        osr2 = os_radius[i] * os_radius[i]
        sub = oversample
        h = 1.0 / sub
        for jy in range(side):
            dy0 = (jy - r) - fy
            for jx in range(side):
                dx0 = (jx - r) - fx
                if dx0 * dx0 + dy0 * dy0 < osr2:
                    v = 0.0
                    for sy in range(sub):
                        ddy = dy0 + (sy + 0.5) * h - 0.5
                        for sx in range(sub):
                            ddx = dx0 + (sx + 0.5) * h - 0.5
                            v += _moffat_cell(ddx, ddy, a11[i], a12[i], a22[i], inv_a2, b, h)
                    v *= h * h
                else:
                    v = _moffat_cell(dx0, dy0, a11[i], a12[i], a22[i], inv_a2, b, 1.0)
                out[o + jy * side + jx] = v
                s += v
        if s > 0:
            scale = flux[i] / s
            for k in range(side * side):
                out[o + k] *= scale


@njit(parallel=True)
def gaussmix_stamps(x, y, flux, gal_cxx, gal_cxy, gal_cyy, gal_amp, gal_ncomp,
                    psf_var, psf_amp, psf_s11, psf_s12, psf_s22, alpha, radius, offsets, out):
    """Galaxies as sums of Gaussians convolved analytically with a Gaussian-mixture PSF.

    Galaxy ``i`` has ``gal_ncomp[i]`` components (row ``i`` of the ``gal_*`` arrays): each a
    covariance ``[[cxx, cxy], [cxy, cyy]]`` (pixels^2) and a weight. The PSF has components of
    covariance ``alpha[i]^2 * psf_var[j] * S`` (``S`` the PSF shape matrix, det 1) and weights
    ``psf_amp[j]``. A pixel-response term (1/12 pixel^2) is added to every covariance, so
    sampling at pixel centres integrates over pixels. Stamps are normalised to ``flux``.
    """
    n = x.shape[0]
    npsf = psf_var.shape[0]
    for i in prange(n):
        r = radius[i]
        side = 2 * r + 1
        cx = np.floor(x[i] + 0.5)
        cy = np.floor(y[i] + 0.5)
        fx = x[i] - cx
        fy = y[i] - cy
        o = offsets[i]
        ng = gal_ncomp[i]
        m = ng * npsf
        w = np.empty(m)
        ixx = np.empty(m)
        ixy = np.empty(m)
        iyy = np.empty(m)
        k = 0
        a2 = alpha[i] * alpha[i]
        for g in range(ng):
            for j in range(npsf):
                cxx = gal_cxx[i, g] + a2 * psf_var[j] * psf_s11 + 1.0 / 12.0
                cxy = gal_cxy[i, g] + a2 * psf_var[j] * psf_s12
                cyy = gal_cyy[i, g] + a2 * psf_var[j] * psf_s22 + 1.0 / 12.0
                det = cxx * cyy - cxy * cxy
                w[k] = gal_amp[i, g] * psf_amp[j] / (2.0 * math.pi * math.sqrt(det))
                ixx[k] = cyy / det
                ixy[k] = -cxy / det
                iyy[k] = cxx / det
                k += 1
        for kk in range(side * side):
            out[o + kk] = 0.0
        for jy in range(side):
            dy = (jy - r) - fy
            row = o + jy * side
            for k in range(m):
                # exp(-q/2) along the row by recurrence from its peak outwards: two exp() per
                # row and component, then multiplications (values only shrink, so underflow is safe)
                a = ixx[k]
                b = ixy[k] * dy
                jpk = int(np.floor(-b / a + r + fx + 0.5))
                if jpk < 0:
                    jpk = 0
                elif jpk > side - 1:
                    jpk = side - 1
                dx = (jpk - r) - fx
                q0 = a * dx * dx + 2.0 * b * dx + iyy[k] * dy * dy
                if q0 > 80.0:
                    continue
                g0 = w[k] * math.exp(-0.5 * q0)
                kappa = math.exp(-a)
                g = g0
                rho = math.exp(-0.5 * (a * (2.0 * dx + 1.0) + 2.0 * b))
                for jx in range(jpk, side):
                    out[row + jx] += g
                    g *= rho
                    rho *= kappa
                    if g < 1e-13 * w[k]:
                        break
                g = g0
                rho = math.exp(-0.5 * (a * (-2.0 * dx + 1.0) - 2.0 * b))
                for jx in range(jpk - 1, -1, -1):
                    g *= rho
                    rho *= kappa
                    out[row + jx] += g
                    if g < 1e-13 * w[k]:
                        break
        s = 0.0
        for kk in range(side * side):
            s += out[o + kk]
        if s > 0:
            scale = flux[i] / s
            for k in range(side * side):
                out[o + k] *= scale


@njit
def add_stamps(image, x, y, radius, offsets, buf):
    """Add the stamps of ``buf`` (see :func:`moffat_stamps`) into ``image``, clipped at its edges."""
    ny, nx = image.shape
    for i in range(x.shape[0]):
        r = radius[i]
        side = 2 * r + 1
        cx = int(np.floor(x[i] + 0.5))
        cy = int(np.floor(y[i] + 0.5))
        o = offsets[i]
        for jy in range(side):
            py = cy - r + jy
            if py < 0 or py >= ny:
                continue
            for jx in range(side):
                px = cx - r + jx
                if px < 0 or px >= nx:
                    continue
                image[py, px] += buf[o + jy * side + jx]


@njit(parallel=True)
def bleed_columns(image, full_well, columns):
    """Charge above ``full_well`` (per pixel, e-) spills half up, half down its column.

    Only the listed ``columns`` are treated (those holding an overflowing pixel). Pixels that
    overflow are set to the full well; the excess fills the next pixels along the column
    until it is used up or leaves the detector.
    """
    ny, nx = image.shape
    for j in prange(columns.shape[0]):
        ix = columns[j]
        up = 0.0
        excess = np.zeros(ny)
        for iy in range(ny):
            if image[iy, ix] > full_well[iy, ix]:
                excess[iy] = image[iy, ix] - full_well[iy, ix]
                image[iy, ix] = full_well[iy, ix]
        for iy in range(ny):
            if up > 0.0:
                room = full_well[iy, ix] - image[iy, ix]
                if room > 0.0:
                    take = min(room, up)
                    image[iy, ix] += take
                    up -= take
            up += 0.5 * excess[iy]
        down = 0.0
        for iy in range(ny - 1, -1, -1):
            if down > 0.0:
                room = full_well[iy, ix] - image[iy, ix]
                if room > 0.0:
                    take = min(room, down)
                    image[iy, ix] += take
                    down -= take
            down += 0.5 * excess[iy]


@njit
def deposit_tracks(image, x0, y0, x1, y1, electrons, width):
    """Cosmic rays: straight tracks from (x0, y0) to (x1, y1) depositing ``electrons`` per pixel
    of length, sharp (not convolved with the PSF). ``width`` 0 marks a 1-pixel track, 1 spreads
    a quarter of the charge to each side neighbour (wider, fatter hits)."""
    ny, nx = image.shape
    for i in range(x0.shape[0]):
        dx = x1[i] - x0[i]
        dy = y1[i] - y0[i]
        length = math.sqrt(dx * dx + dy * dy)
        nstep = int(length * 4.0) + 1
        per = electrons[i] * max(length, 1.0) / nstep
        for s in range(nstep):
            t = (s + 0.5) / nstep
            px = int(np.floor(x0[i] + t * dx + 0.5))
            py = int(np.floor(y0[i] + t * dy + 0.5))
            if width[i] == 0:
                if 0 <= px < nx and 0 <= py < ny:
                    image[py, px] += per
            else:
                if 0 <= px < nx and 0 <= py < ny:
                    image[py, px] += 0.5 * per
                for e in (-1, 1):
                    if abs(dx) > abs(dy):
                        qx, qy = px, py + e
                    else:
                        qx, qy = px + e, py
                    if 0 <= qx < nx and 0 <= qy < ny:
                        image[qy, qx] += 0.25 * per


@njit(parallel=True)
def poisson_large(lam, z, out):
    """Poisson deviates for large means from standard normals ``z``: the Cornish-Fisher
    expansion ``round(lam + sqrt(lam) z + (z^2 - 1)/6)`` (mean, variance and skewness of the
    Poisson law), clipped at 0. Accurate for lam >= 30; smaller means are left to
    :func:`poisson_small`. All arrays 2D, same shape."""
    ny, nx = lam.shape
    for iy in prange(ny):
        for ix in range(nx):
            m = lam[iy, ix]
            if m <= 0.0:
                out[iy, ix] = 0.0
            else:
                zz = z[iy, ix]
                k = np.floor(m + math.sqrt(m) * zz + (zz * zz - 1.0) / 6.0 + 0.5)
                out[iy, ix] = k if k > 0.0 else 0.0


@njit(parallel=True)
def poisson_small(lam_flat, idx, u, out_flat):
    """Exact Poisson deviates by inversion of the cumulative law for the pixels ``idx`` of
    ``lam_flat`` (small means), from uniforms ``u`` (one per index)."""
    for j in prange(idx.shape[0]):
        i = idx[j]
        m = lam_flat[i]
        if m <= 0.0:
            out_flat[i] = 0.0
            continue
        p = math.exp(-m)
        c = p
        k = 0
        while u[j] > c and k < 1000:
            k += 1
            p *= m / k
            c += p
        out_flat[i] = k
