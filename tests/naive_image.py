"""Slow, plain-numpy references for minidr.image tests, and a small honest image simulator.

* ``render_scene``: a non-square image [e-] with Moffat stars of known flux at sub-pixel
  positions, exponential galaxies (convolved with the PSF), a sky gradient, Poisson + read
  noise, saturated stars (clipped, SAT-masked) and cosmic rays (left in, unmasked, or
  masked + interpolated), plus the truth table.
* naive copies of kernels: ``naive_moffat``, ``naive_aperture`` (sub-sampled circle),
  ``naive_psf_flux``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import fftconvolve

from minidr.products import MaskBit


def moffat_alpha(fwhm, beta):
    return fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))


def naive_moffat(alpha, beta, e1, e2, fx, fy, radius, oversample=5):
    """Elliptical Moffat (fractions of total flux) integrated over pixels by brute-force
    oversampling, centred at (fx, fy) from the stamp's centre pixel."""
    n = 2 * radius + 1
    o = oversample
    sub = (np.arange(n * o) + 0.5) / o - 0.5 - radius
    dx = sub[None, :] - fx
    dy = sub[:, None] - fy
    s = math.sqrt(1 - e1 * e1 - e2 * e2)
    a = (1 - e1) / (alpha**2 * s)
    b = -e2 / (alpha**2 * s)
    c = (1 + e1) / (alpha**2 * s)
    q = a * dx * dx + 2 * b * dx * dy + c * dy * dy
    p = (beta - 1) / (math.pi * alpha**2) * (1 + q) ** (-beta)
    return p.reshape(n, o, n, o).mean(axis=(1, 3))


def naive_aperture(image, x, y, r, oversample=32):
    """Circular aperture sum by brute-force sub-pixel sampling."""
    ny, nx = image.shape
    tot = 0.0
    o = oversample
    offs = (np.arange(o) + 0.5) / o - 0.5
    for yy in range(max(0, int(y - r - 1)), min(ny, int(y + r + 2))):
        for xx in range(max(0, int(x - r - 1)), min(nx, int(x + r + 2))):
            dx = xx + offs[None, :] - x
            dy = yy + offs[:, None] - y
            frac = np.mean(dx * dx + dy * dy < r * r)
            tot += frac * image[yy, xx]
    return tot


def naive_psf_flux(image, variance, stamp, cx, cy):
    """sum(P d)/sum(P^2) and sqrt(sum(P^2 v))/sum(P^2) on a stamp centred at pixel (cx, cy)."""
    r = stamp.shape[0] // 2
    d = image[cy - r: cy + r + 1, cx - r: cx + r + 1].astype(float)
    v = variance[cy - r: cy + r + 1, cx - r: cx + r + 1].astype(float)
    s2 = (stamp * stamp).sum()
    return (stamp * d).sum() / s2, math.sqrt((stamp**2 * v).sum()) / s2


def render_scene(shape=(600, 800), seed=1, n_stars=300, fwhm=3.6, beta=3.0, e1=0.03, e2=-0.02,
                 sky=800.0, sky_gradient=(0.25, -0.15), read_noise=5.0, n_galaxies=25,
                 n_cosmics=20, n_saturated=3, saturation=60000.0, mag_range=(16.0, 23.5),
                 zp=28.0, cr_mode="raw", min_sep=0.0, gal_mag_range=(15.5, 19.0)):
    """Render a test scene. Returns dict(image, variance, mask, truth, sky, psf).

    ``truth`` is a structured array: x, y [pixels], flux [e-], kind (0 star, 1 galaxy,
    2 cosmic ray), saturated (bool). Star fluxes are ``10**(-0.4 (mag - zp))``; positions
    uniform over the image (sub-pixel). The sky is ``sky * (1 + gx * u + gy * v)`` with
    u, v in [-1, 1] across the image [e-/pixel]. ``cr_mode``: "raw" leaves cosmic rays in
    the image and mask untouched; "masked" marks them CR|INTERP and interpolates them.
    """
    rng = np.random.default_rng(seed)
    ny, nx = shape
    alpha = moffat_alpha(fwhm, beta)
    yy, xx = np.mgrid[0:ny, 0:nx]
    u = (xx - (nx - 1) / 2) / (nx / 2)
    v = (yy - (ny - 1) / 2) / (ny / 2)
    skymap = sky * (1 + sky_gradient[0] * u + sky_gradient[1] * v)
    model = np.zeros(shape)
    rows = []

    def add(stamp, x, y):
        r = stamp.shape[0] // 2
        cx, cy = int(math.floor(x + 0.5)), int(math.floor(y + 0.5))
        y0, y1 = cy - r, cy + r + 1
        x0, x1 = cx - r, cx + r + 1
        sy0, sx0 = max(0, -y0), max(0, -x0)
        sy1 = stamp.shape[0] - max(0, y1 - ny)
        sx1 = stamp.shape[1] - max(0, x1 - nx)
        model[y0 + sy0: y0 + sy1, x0 + sx0: x0 + sx1] += stamp[sy0:sy1, sx0:sx1]

    pos = []

    def new_pos(margin=3):
        for _ in range(1000):
            x = rng.uniform(margin, nx - 1 - margin)
            y = rng.uniform(margin, ny - 1 - margin)
            if min_sep <= 0 or all((x - a) ** 2 + (y - b) ** 2 > min_sep**2 for a, b in pos):
                pos.append((x, y))
                return x, y
        raise RuntimeError("cannot place source")

    mags = rng.uniform(*mag_range, n_stars)
    for m in mags:
        x, y = new_pos()
        flux = 10 ** (-0.4 * (m - zp))
        R = 30 if flux > 2e4 else 18
        st = naive_moffat(alpha, beta, e1, e2, x - math.floor(x + 0.5), y - math.floor(y + 0.5), R, 4)
        add(flux * st, x, y)
        rows.append((x, y, flux, 0, False))
    for k in range(n_saturated):
        x, y = new_pos(margin=40)
        flux = 10 ** (-0.4 * (rng.uniform(11.0, 12.0) - zp))
        st = naive_moffat(alpha, beta, e1, e2, x - math.floor(x + 0.5), y - math.floor(y + 0.5), 30, 4)
        add(flux * st, x, y)
        rows.append((x, y, flux, 0, True))
    psf_r = 15
    psf_st = naive_moffat(alpha, beta, e1, e2, 0.0, 0.0, psf_r, 4)
    for k in range(n_galaxies):
        x, y = new_pos(margin=20)
        flux = 10 ** (-0.4 * (rng.uniform(*gal_mag_range) - zp))
        h = rng.uniform(1.5, 4.0)  # exponential scale length [pixels]
        q = rng.uniform(0.5, 1.0)
        th = rng.uniform(0, np.pi)
        R = 20
        o = 4
        sub = (np.arange((2 * R + 1) * o) + 0.5) / o - 0.5 - R
        dx = sub[None, :] - (x - math.floor(x + 0.5))
        dy = sub[:, None] - (y - math.floor(y + 0.5))
        xr = dx * math.cos(th) + dy * math.sin(th)
        yr = -dx * math.sin(th) + dy * math.cos(th)
        prof = np.exp(-np.sqrt(xr**2 + (yr / q) ** 2) / h)
        prof = prof.reshape(2 * R + 1, o, 2 * R + 1, o).mean(axis=(1, 3))
        prof /= prof.sum()
        gal = fftconvolve(prof, psf_st, mode="same")
        add(flux * gal, x, y)
        rows.append((x, y, flux, 1, False))
    image = rng.poisson(np.maximum(model + skymap, 0)).astype(np.float64)
    image += rng.normal(0, read_noise, shape)
    mask = np.zeros(shape, np.uint16)
    sat = image >= saturation
    image[sat] = saturation
    mask[sat] |= np.uint16(MaskBit.SAT)
    variance = np.maximum(image, 0) + read_noise**2
    for k in range(n_cosmics):
        x, y = new_pos(margin=5)
        cx, cy = int(round(x)), int(round(y))
        length = rng.integers(1, 4)
        ang = rng.uniform(0, np.pi)
        amp = rng.uniform(2000, 20000)
        pix = {(cy + int(round(t * math.sin(ang))), cx + int(round(t * math.cos(ang)))) for t in range(length)}
        for py, px in pix:
            if cr_mode == "raw":
                image[py, px] += amp
                variance[py, px] += amp
            else:
                mask[py, px] |= np.uint16(MaskBit.CR | MaskBit.INTERP)
        rows.append((x, y, amp * len(pix), 2, False))
    if cr_mode != "raw":
        bad = (mask & MaskBit.CR) != 0
        for py, px in zip(*np.nonzero(bad)):
            nb = []
            for dy in (-2, -1, 1, 2):
                for dx in (-2, -1, 1, 2):
                    qy, qx = py + dy, px + dx
                    if 0 <= qy < ny and 0 <= qx < nx and not bad[qy, qx]:
                        nb.append(image[qy, qx])
            image[py, px] = np.mean(nb)
    truth = np.array(rows, dtype=[("x", "f8"), ("y", "f8"), ("flux", "f8"), ("kind", "i4"), ("saturated", "?")])
    return dict(image=image.astype(np.float32), variance=variance.astype(np.float32), mask=mask,
                truth=truth, sky=skymap, fwhm=fwhm, beta=beta, alpha=alpha, model=model)


def match(x, y, tx, ty, radius):
    """Nearest-neighbour match of (x, y) to truth (tx, ty) within radius [pixels].

    Returns (idx_truth_for_each_detection or -1, idx_detection_for_each_truth or -1)."""
    from scipy.spatial import cKDTree

    d2t = np.full(len(x), -1)
    t2d = np.full(len(tx), -1)
    if len(x) == 0 or len(tx) == 0:
        return d2t, t2d
    tt = cKDTree(np.column_stack([tx, ty]))
    dist, idx = tt.query(np.column_stack([x, y]))
    d2t = np.where(dist <= radius, idx, -1)
    td = cKDTree(np.column_stack([x, y]))
    dist, idx = td.query(np.column_stack([tx, ty]))
    t2d = np.where(dist <= radius, idx, -1)
    return d2t, t2d


def brighter_neighbour(tx, ty, flux, radius):
    """True for truth entries with a brighter truth object within radius [pixels]."""
    from scipy.spatial import cKDTree

    t = cKDTree(np.column_stack([tx, ty]))
    out = np.zeros(len(tx), bool)
    for i, nb in enumerate(t.query_ball_point(np.column_stack([tx, ty]), radius)):
        out[i] = any(flux[j] > flux[i] for j in nb if j != i)
    return out
