"""Measurement of sources at given positions: windowed centroids, PSF and aperture fluxes,
adaptive second moments, local sky, extendedness and flags.

All on a background-subtracted image in electrons with its variance (e^2) and MaskBit
plane; positions are 0-based pixels, pixel centres at integers. :func:`psf_flux_at` is the
fixed-position PSF photometry also used for forced photometry.
"""

from __future__ import annotations

import numpy as np

from ..config import MeasurementConfig
from ..products import MaskBit, SourceFlag
from . import kernels
from .psf import PsfModel

#: pixels left out of every sum (their values are not data)
EXCLUDE_BITS = int(MaskBit.SAT | MaskBit.BAD | MaskBit.HOT | MaskBit.NO_DATA)


def _flag_map() -> np.ndarray:
    """Mask bit number -> SourceFlag bits set when such a pixel is in the aperture."""
    fm = np.zeros(16, dtype=np.int32)
    table = {
        MaskBit.SAT: SourceFlag.SATURATED,
        MaskBit.BAD: SourceFlag.BAD,
        MaskBit.HOT: SourceFlag.BAD,
        MaskBit.NO_DATA: SourceFlag.BAD,
        MaskBit.CR: SourceFlag.CR,
        MaskBit.INTERP: SourceFlag.INTERPOLATED,
    }
    for bit, flag in table.items():
        fm[int(bit).bit_length() - 1] = int(flag)
    return fm


FLAG_MAP = _flag_map()

SOURCE_DTYPE = np.dtype([
    ("x", "f8"), ("y", "f8"), ("xErr", "f8"), ("yErr", "f8"),
    ("psfFlux", "f8"), ("psfFluxErr", "f8"), ("apFlux", "f8"), ("apFluxErr", "f8"),
    ("ixx", "f8"), ("iyy", "f8"), ("ixy", "f8"), ("sky", "f8"), ("extendedness", "f8"),
    ("snr", "f8"), ("flags", "i4"),
    ("npix", "i4"), ("peak", "f8"), ("parent", "i4"), ("nchild", "i4"), ("sharpness", "f8"),
])
"""Source catalogue of one image (the extra fields after ``flags``: ``npix`` pixels in the
detection core, ``peak`` [e-] highest pixel of the smoothed detection image, ``parent`` the
0-based id of the footprint (all children of one blend share it), ``nchild`` number of
sources in that footprint, ``sharpness`` centre pixel / fitted PSF model's centre value)."""


def _prep(image, variance, mask):
    image = np.ascontiguousarray(image, dtype=np.float32)
    variance = np.ascontiguousarray(variance, dtype=np.float32)
    if mask is None:
        mask = np.zeros(image.shape, dtype=np.uint16)
    mask = np.ascontiguousarray(mask, dtype=np.uint16)
    if image.ndim != 2 or image.shape != variance.shape or image.shape != mask.shape:
        raise ValueError("image, variance and mask must be 2-d arrays of the same shape")
    return image, variance, mask


def psf_flux_at(image, variance, mask, psf: PsfModel, x, y):
    """Fixed-position PSF photometry: ``(flux, flux_err, flags)`` arrays (e-, e-, int32).

    ``image`` is background-subtracted [e-], ``variance`` [e^2] (including the sources'
    Poisson noise), ``mask`` a MaskBit plane (or None), x/y 0-based pixels (scalars or
    arrays). The PSF model P (fractions of the total flux over a stamp of
    ``psf.fit_radius``) is fitted with uniform weights, ``F = apcorr * sum(P d) / sum(P^2)``,
    ``err = apcorr * sqrt(sum(P^2 v)) / sum(P^2)``: unbiased at every flux (weights never
    depend on the data). SAT/BAD/HOT/NO_DATA pixels are left out; flags are SourceFlag bits
    (SATURATED, BAD, CR, INTERPOLATED for such pixels in the PSF footprint, EDGE when it runs
    off the image, PSF_FIT when the fit failed).
    """
    image, variance, mask = _prep(image, variance, mask)
    xa = np.atleast_1d(np.asarray(x, dtype=np.float64))
    ya = np.atleast_1d(np.asarray(y, dtype=np.float64))
    flux, err, flags, _ = _psf_flux(image, variance, mask, psf, xa, ya)
    return flux, err, flags


def _psf_flux(image, variance, mask, psf, xa, ya):
    n = xa.size
    if n == 0:
        z = np.zeros(0)
        return z, z, np.zeros(0, np.int32), z
    good = np.isfinite(xa) & np.isfinite(ya)
    xs = np.where(good, xa, 0.0)
    ys = np.where(good, ya, 0.0)
    alpha, beta, e1, e2 = psf.params_at(xs, ys)
    flux, err, _, flags, sharp = kernels.psf_flux_kernel(
        image, variance, mask, xs, ys, alpha, beta, e1, e2, psf.fit_radius,
        EXCLUDE_BITS, FLAG_MAP, int(SourceFlag.EDGE))
    flux = flux * psf.apcorr
    err = err * psf.apcorr
    bad = ~good | ~np.isfinite(flux) | ~np.isfinite(err)
    flux[~good] = np.nan
    err[~good] = np.nan
    flags = flags | np.where(bad, int(SourceFlag.PSF_FIT), 0).astype(np.int32)
    return flux, err, flags.astype(np.int32), sharp


def blend_psf_fluxes(image, variance, mask, psf, x, y, groups):
    """Joint fixed-position PSF fit of the members of each group (same group id, >= 2
    members): solves ``A F = b`` with ``A_ij = sum P_i P_j``, ``b_i = sum P_i d``, errors from
    ``A^-1 (P^T V P) A^-1``. Returns (flux, err) for every source (NaN for singletons)."""
    n = x.size
    flux = np.full(n, np.nan)
    err = np.full(n, np.nan)
    if n == 0:
        return flux, err
    order = np.argsort(groups, kind="stable")
    g = groups[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    ends = np.r_[starts[1:], n]
    r = psf.fit_radius
    m = 2 * r + 1
    ny, nx = image.shape
    for s, e in zip(starts, ends):
        if e - s < 2:
            continue
        idx = order[s:e]
        xs, ys = x[idx], y[idx]
        cx = np.floor(xs + 0.5).astype(int)
        cy = np.floor(ys + 0.5).astype(int)
        x0, x1 = max(cx.min() - r, 0), min(cx.max() + r + 1, nx)
        y0, y1 = max(cy.min() - r, 0), min(cy.max() + r + 1, ny)
        alpha, beta, e1, e2 = psf.params_at(xs, ys)
        st = kernels.moffat_stamps(alpha, beta, e1, e2, xs - cx, ys - cy, r)
        k = idx.size
        P = np.zeros((k, y1 - y0, x1 - x0))
        for j in range(k):
            ya, yb = cy[j] - r - y0, cy[j] + r + 1 - y0
            xa, xb = cx[j] - r - x0, cx[j] + r + 1 - x0
            sy0, sx0 = max(0, -ya), max(0, -xa)
            sy1 = m - max(0, yb - (y1 - y0))
            sx1 = m - max(0, xb - (x1 - x0))
            P[j, ya + sy0: ya + sy1, xa + sx0: xa + sx1] = st[j, sy0:sy1, sx0:sx1]
        d = image[y0:y1, x0:x1].astype(np.float64)
        v = variance[y0:y1, x0:x1].astype(np.float64)
        good = ((mask[y0:y1, x0:x1] & EXCLUDE_BITS) == 0) & np.isfinite(d) & np.isfinite(v)
        Pg = P[:, good]
        A = Pg @ Pg.T
        b = Pg @ d[good]
        try:
            Ai = np.linalg.inv(A)
        except np.linalg.LinAlgError:
            continue
        f = Ai @ b
        C = Ai @ ((Pg * v[good]) @ Pg.T) @ Ai
        flux[idx] = f * psf.apcorr
        err[idx] = np.sqrt(np.maximum(np.diag(C), 0.0)) * psf.apcorr
    return flux, err


def measure_sources(image, variance, mask, psf: PsfModel, x, y, cfg: MeasurementConfig = MeasurementConfig(),
                    sky=None, groups=None, star_ratio: float | None = None):
    """Measure sources near initial positions (x, y) [pixels]; returns a SOURCE_DTYPE array.

    Steps: windowed centroid (Gaussian window of the PSF's sigma); PSF flux at the
    centroid (jointly for members of the same ``groups`` id); exact-circle aperture flux
    of radius ``cfg.aperture_radius * FWHM``; adaptive moments; ``sky`` from the given map
    [e-/pixel]; extendedness from ``psfFlux / (apFlux / c)`` where ``c`` (``star_ratio``, or
    the model's enclosed fraction when None) makes stars give ~1.
    """
    image, variance, mask = _prep(image, variance, mask)
    x0 = np.atleast_1d(np.asarray(x, dtype=np.float64))
    y0 = np.atleast_1d(np.asarray(y, dtype=np.float64))
    n = x0.size
    out = np.zeros(n, dtype=SOURCE_DTYPE)
    out["parent"] = -1
    if n == 0:
        return out
    fwhm = np.asarray(psf.fwhm_at(x0, y0), dtype=np.float64).reshape(-1)
    sig = fwhm / 2.3548
    cx, cy, ex, ey, cok = kernels.windowed_centroid_kernel(image, variance, mask, x0, y0, sig,
                                                            EXCLUDE_BITS, 40, 1e-4)
    flags = np.where(cok, 0, int(SourceFlag.CENTROID)).astype(np.int32)
    # for members of blends, fall back to the peak when the centroid wandered off
    flux, ferr, pflags, sharp = _psf_flux(image, variance, mask, psf, cx, cy)
    flags |= pflags
    if groups is not None:
        groups = np.asarray(groups)
        bf, be = blend_psf_fluxes(image, variance, mask, psf, cx, cy, groups)
        use = np.isfinite(bf)
        flux = np.where(use, bf, flux)
        ferr = np.where(use, be, ferr)
    rap = cfg.aperture_radius * fwhm
    # neighbour-subtracted photometry: R = image - sum_j F_j P_j; the PSF fit being linear,
    # F_i += fit(R)_i is one Jacobi step towards the simultaneous fit of all sources, and
    # ap(R)_i + F_i * enclosed is the aperture flux with the neighbours' light removed.
    alpha, beta, e1, e2 = psf.params_at(cx, cy)
    r = psf.fit_radius
    for _ in range(max(cfg.neighbour_iterations, 0)):
        model = kernels.render_psf_models(image.shape[0], image.shape[1], cx, cy, flux / psf.apcorr,
                                          alpha, beta, e1, e2, r + (r + 1) // 2)
        resid = image - model
        dfl, _, _, _, _ = kernels.psf_flux_kernel(resid, variance, mask, cx, cy, alpha, beta, e1, e2, r,
                                                  EXCLUDE_BITS, FLAG_MAP, 0)
        flux = np.where(np.isfinite(dfl) & np.isfinite(flux), flux + dfl * psf.apcorr, flux)
    if cfg.neighbour_iterations > 0:
        model = kernels.render_psf_models(image.shape[0], image.shape[1], cx, cy, flux / psf.apcorr,
                                          alpha, beta, e1, e2, r + (r + 1) // 2)
        resid = image - model
        af, ae, _, aflags = kernels.aperture_flux_kernel(resid, variance, mask, cx, cy, rap,
                                                         EXCLUDE_BITS, FLAG_MAP, int(SourceFlag.EDGE))
        own = enclosed_fraction(psf, cfg.aperture_radius)
        good = np.isfinite(flux) & (flux > 0)
        af = af + np.where(good, flux / psf.apcorr * own, 0.0)
    else:
        af, ae, _, aflags = kernels.aperture_flux_kernel(image, variance, mask, cx, cy, rap,
                                                         EXCLUDE_BITS, FLAG_MAP, int(SourceFlag.EDGE))
    flags |= aflags
    ixx, iyy, ixy, mok = kernels.adaptive_moments_kernel(image, mask, cx, cy, sig, EXCLUDE_BITS, 60, 1e-5)
    flags |= np.where(mok, 0, int(SourceFlag.SHAPE)).astype(np.int32)
    out["x"], out["y"], out["xErr"], out["yErr"] = cx, cy, ex, ey
    out["psfFlux"], out["psfFluxErr"] = flux, ferr
    out["apFlux"], out["apFluxErr"] = af, ae
    out["ixx"], out["iyy"], out["ixy"] = ixx, iyy, ixy
    if sky is not None:
        sky = np.asarray(sky)
        ix = np.clip(np.floor(cx + 0.5).astype(int), 0, image.shape[1] - 1)
        iy = np.clip(np.floor(cy + 0.5).astype(int), 0, image.shape[0] - 1)
        out["sky"] = sky[iy, ix]
    else:
        out["sky"] = np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        out["snr"] = flux / ferr
        if star_ratio is None:
            star_ratio = enclosed_fraction(psf, cfg.aperture_radius)
        out["extendedness"] = extendedness(flux, ferr, af / star_ratio, ae / star_ratio, cfg.extendedness_ratio,
                                           cfg.extendedness_nsigma)
    out["sharpness"] = sharp
    out["flags"] = flags
    return out


def psf_aperture_fraction(psf: PsfModel, x, y, radius):
    """Fraction of the PSF model (as fitted: stamps of ``2 fit_radius``) inside circles of
    ``radius`` [pixels] centred on it at (x, y) (arrays)."""
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    y = np.atleast_1d(np.asarray(y, dtype=np.float64))
    radius = np.broadcast_to(np.asarray(radius, dtype=np.float64), x.shape).copy()
    r = 2 * psf.fit_radius
    alpha, beta, e1, e2 = psf.params_at(x, y)
    cx = np.floor(x + 0.5)
    cy = np.floor(y + 0.5)
    st = kernels.moffat_stamps(alpha, beta, e1, e2, x - cx, y - cy, r)
    out = np.empty(x.size)
    z = np.zeros(st.shape[1:], dtype=np.uint16)
    one = np.ones(st.shape[1:], dtype=np.float32)
    for i in range(x.size):
        fl, _, _, _ = kernels.aperture_flux_kernel(st[i].astype(np.float32), one, z,
                                                   np.array([float(r) + x[i] - cx[i]]),
                                                   np.array([float(r) + y[i] - cy[i]]),
                                                   radius[i:i + 1], 0, FLAG_MAP, 0)
        out[i] = fl[0]
    return out


def enclosed_fraction(psf: PsfModel, radius_fwhm: float) -> float:
    """Fraction of the PSF model's total flux within a circle of radius_fwhm * FWHM at the
    detector centre, computed by exact-overlap aperture photometry of the rendered model."""
    f = psf.fwhm
    r = int(np.ceil(radius_fwhm * f)) + 2
    cx = 0.5 * (psf.shape[1] - 1)
    cy = 0.5 * (psf.shape[0] - 1)
    alpha, beta, e1, e2 = psf.params_at(cx, cy)
    st = kernels.moffat_stamp(alpha[0], beta[0], e1[0], e2[0], 0.0, 0.0, r)
    z = np.zeros(st.shape, dtype=np.uint16)
    fl, _, _, _ = kernels.aperture_flux_kernel(st.astype(np.float32), np.ones(st.shape, np.float32), z,
                                               np.array([float(r)]), np.array([float(r)]),
                                               np.array([radius_fwhm * f]), 0, FLAG_MAP, 0)
    return float(fl[0])


def extendedness(psf_flux, psf_err, model_flux, model_err, ratio_cut: float = 0.985, nsigma: float = 3.0):
    """1.0 (extended) when ``psf_flux / model_flux < ratio_cut`` by more than three times
    the noise of that ratio (``nsigma``), else 0.0; NaN when the fluxes are not usable.

    ``model_flux`` is an aperture flux scaled so that point sources give a ratio of 1; the
    noise of ``1 - ratio`` is ``sqrt(max(model_err^2 - psf_err^2, 0)) / model_flux`` (the PSF
    flux is the better-measured part of the same pixels).
    """
    psf_flux = np.asarray(psf_flux, dtype=np.float64)
    model_flux = np.asarray(model_flux, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = psf_flux / model_flux
        sig = np.sqrt(np.maximum(np.asarray(model_err) ** 2 - np.asarray(psf_err) ** 2, 0.0)) / np.abs(model_flux)
        ext = (ratio < ratio_cut) & (1.0 - ratio > nsigma * sig)
        res = np.where(ext, 1.0, 0.0)
        res[~(np.isfinite(ratio) & (model_flux > 0))] = np.nan
    return res
