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


def _neighbours(icx, icy, reach: float):
    """CSR lists (start, index) of the sources within ``reach`` pixels (Chebyshev distance
    of the integer centres ``icx, icy``) of each source, itself included."""
    from scipy.spatial import cKDTree

    n = icx.size
    pairs = cKDTree(np.column_stack([icx, icy]).astype(np.float64)).query_pairs(
        reach, p=np.inf, output_type="ndarray")
    own = np.arange(n, dtype=np.int64)
    a = np.concatenate([own, pairs[:, 0], pairs[:, 1]]).astype(np.int64)
    b = np.concatenate([own, pairs[:, 1], pairs[:, 0]]).astype(np.int64)
    order = np.lexsort((b, a))
    return np.searchsorted(a[order], np.arange(n + 1)).astype(np.int64), b[order]


def _photometry(image, variance, mask, psf, cx, cy, groups, rap, iterations: int, own: float, cache=None):
    """PSF fluxes (single, then simultaneous within ``groups``, then ``iterations`` Jacobi
    steps of neighbour subtraction) and neighbour-subtracted aperture fluxes of radius
    ``rap`` [pixels] at the centroids (cx, cy).

    Neighbour subtraction: with the residual ``R = image - sum_j F_j P_j`` (sources of
    positive flux, models on stamps of 1.5 ``fit_radius``), ``F_i += fit(R)_i`` is one Jacobi
    step towards the simultaneous fit of all sources, and ``ap(R)_i + F_i * own`` (``own``
    the model's enclosed fraction in the aperture) is the aperture flux with the
    neighbours' light removed. Being linear in the F_j, both are computed from the pair
    overlaps of the PSF models (:func:`kernels.neighbour_photometry_kernel`), never from a
    rendered image. Returns flux, err [e-] (times ``psf.apcorr``), PSF flags, sharpness,
    aperture flux, its error [e-] and flags. ``cache`` (a dict) keeps the PSF stamps and
    the per-source and pair sums: those of its entries are reused for the first sources
    (the caller guarantees the same positions and model), the sums except for sources with
    a new neighbour; it receives those of all sources.
    """
    from scipy import sparse

    n = cx.size
    good = np.isfinite(cx) & np.isfinite(cy)
    xs = np.where(good, cx, 0.0)
    ys = np.where(good, cy, 0.0)
    r = psf.fit_radius
    big = r + (r + 1) // 2
    alpha, beta, e1, e2 = psf.params_at(xs, ys)
    old = None if cache is None else cache.get("stamps")
    nold = 0 if old is None or old.shape[1] != 2 * big + 1 else min(old.shape[0], n)
    stamps = np.empty((n, 2 * big + 1, 2 * big + 1), np.float32)
    stamps[:nold] = old[:nold] if nold else stamps[:0]
    stamps[nold:] = kernels.moffat_stamps_f32(alpha[nold:], beta[nold:], e1[nold:], e2[nold:], xs[nold:],
                                              ys[nold:], big)
    icx = np.floor(xs + 0.5)
    icy = np.floor(ys + 0.5)
    reach = big + max(r, int(np.ceil(np.max(rap))) + 1) if n else 0
    nb_start, nb_idx = _neighbours(icx, icy, reach)
    grp = np.arange(n, dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
    rap = np.ascontiguousarray(np.broadcast_to(np.asarray(rap, dtype=np.float64), (n,)))
    # the sums of the first sources come from the cache unless a new source is among their
    # neighbours (their stamps, neighbour lists, groups and apertures are then unchanged)
    prev = None if cache is None or not nold else cache.get("phot")
    if prev is not None and (prev["reach"] != reach or prev["n"] != nold
                             or not np.array_equal(prev["grp"], grp[:nold])
                             or not np.array_equal(prev["rap"], rap[:nold])):
        prev = None
    if prev is None:
        todo = np.arange(n, dtype=np.int64)
    else:
        touched = np.zeros(n, bool)
        touched[nold:] = True
        owner = np.repeat(np.arange(n), np.diff(nb_start))
        touched[owner[nb_idx >= nold]] = True
        todo = np.flatnonzero(touched).astype(np.int64)
    spd, sw, spv, pflags, centre, c0, af, ae, aflags, C, A, G, H = kernels.neighbour_photometry_kernel(
        image, variance, mask, xs, ys, stamps, r, grp, nb_start, nb_idx, rap, todo,
        EXCLUDE_BITS, FLAG_MAP, int(SourceFlag.EDGE))
    if prev is not None:
        keep = np.ones(n, bool)
        keep[todo] = False
        keep = np.flatnonzero(keep)
        for a, name in zip((spd, sw, spv, pflags, centre, c0, af, ae, aflags),
                           ("spd", "sw", "spv", "pflags", "centre", "c0", "af", "ae", "aflags")):
            a[keep] = prev[name][keep]
        # pair sums: such a source's neighbour list is the same run of indices as before
        klen = np.diff(nb_start)[keep]
        within = np.arange(klen.sum()) - np.repeat(np.cumsum(klen) - klen, klen)
        pos_old = np.repeat(prev["nb_start"][keep], klen) + within
        pos_new = np.repeat(nb_start[keep], klen) + within
        for a, name in zip((C, A, G, H), ("C", "A", "G", "H")):
            a[pos_new] = prev[name][pos_old]
    if cache is not None:
        cache["stamps"] = stamps
        cache["phot"] = dict(reach=reach, n=n, grp=grp, rap=rap, nb_start=nb_start, spd=spd, sw=sw, spv=spv,
                             pflags=pflags, centre=centre, c0=c0, af=af, ae=ae, aflags=aflags, C=C, A=A, G=G, H=H)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(sw > 0, spd / sw, np.nan)
        e_1 = np.where(sw > 0, np.sqrt(spv) / sw, np.nan)
        sharp = np.where((f1 > 0) & np.isfinite(centre), centre / (f1 * c0), np.nan)
    flux = f1 * psf.apcorr
    ferr = e_1 * psf.apcorr
    bad = ~good | ~np.isfinite(flux) | ~np.isfinite(ferr)
    flux[~good] = np.nan
    ferr[~good] = np.nan
    pflags = (pflags | np.where(bad, int(SourceFlag.PSF_FIT), 0)).astype(np.int32)
    if groups is not None and n:
        members = np.argsort(grp, kind="stable").astype(np.int64)
        gs = grp[members]
        starts = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1], True]).astype(np.int64)
        bf, be = kernels.blend_solve(members, starts, nb_start, nb_idx, G, H, spd)
        use = np.isfinite(bf)
        flux = np.where(use, bf * psf.apcorr, flux)
        ferr = np.where(use, be * psf.apcorr, ferr)
    if iterations > 0 and n:
        Cm = sparse.csr_matrix((C, nb_idx, nb_start), shape=(n, n))
        for _ in range(iterations):
            fpos = np.where(np.isfinite(flux) & (flux > 0), flux / psf.apcorr, 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                dfl = np.where(sw > 0, (spd - Cm @ fpos) / sw, np.nan)
            flux = np.where(np.isfinite(dfl) & np.isfinite(flux), flux + dfl * psf.apcorr, flux)
        fpos = np.where(np.isfinite(flux) & (flux > 0), flux / psf.apcorr, 0.0)
        Am = sparse.csr_matrix((A, nb_idx, nb_start), shape=(n, n))
        af = af - Am @ fpos + fpos * own
    return flux, ferr, pflags, sharp, af, ae, aflags


def measure_sources(image, variance, mask, psf: PsfModel, x, y, cfg: MeasurementConfig = MeasurementConfig(),
                    sky=None, groups=None, star_ratio: float | None = None, known=None, cache=None):
    """Measure sources near initial positions (x, y) [pixels]; returns a SOURCE_DTYPE array.

    Steps: windowed centroid (Gaussian window of the PSF's sigma); PSF flux at the
    centroid (jointly for members of the same ``groups`` id); exact-circle aperture flux
    of radius ``cfg.aperture_radius * FWHM``; adaptive moments; ``sky`` from the given map
    [e-/pixel]; extendedness from ``psfFlux / (apFlux / c)`` where ``c`` (``star_ratio``, or
    the model's enclosed fraction when None) makes stars give ~1. ``known``, a catalogue
    measured earlier on the same image from the first ``len(known)`` of these positions,
    gives their centroids and moments (which depend on nothing else) instead of
    recomputing them; their photometry is redone (it depends on the neighbours). ``cache``
    (a dict, passed again with ``known``) keeps their PSF stamps too.
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
    nk = 0 if known is None else len(known)
    cx, cy, ex, ey, cok = (np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n, bool))
    ixx, iyy, ixy, mok = np.empty(n), np.empty(n), np.empty(n), np.empty(n, bool)
    if nk:
        for a, f in zip((cx, cy, ex, ey, ixx, iyy, ixy), ("x", "y", "xErr", "yErr", "ixx", "iyy", "ixy")):
            a[:nk] = known[f]
        cok[:nk] = (known["flags"] & int(SourceFlag.CENTROID)) == 0
        mok[:nk] = (known["flags"] & int(SourceFlag.SHAPE)) == 0
    if nk < n:
        new = slice(nk, n)
        cx[new], cy[new], ex[new], ey[new], cok[new] = kernels.windowed_centroid_kernel(
            image, variance, mask, x0[new], y0[new], sig[new], EXCLUDE_BITS, 40, 1e-4)
        ixx[new], iyy[new], ixy[new], mok[new] = kernels.adaptive_moments_kernel(
            image, mask, cx[new], cy[new], sig[new], EXCLUDE_BITS, 60, 1e-5)
    flags = np.where(cok, 0, int(SourceFlag.CENTROID)).astype(np.int32)
    rap = cfg.aperture_radius * fwhm
    flux, ferr, pflags, sharp, af, ae, aflags = _photometry(image, variance, mask, psf, cx, cy, groups, rap,
                                                             cfg.neighbour_iterations,
                                                             enclosed_fraction(psf, cfg.aperture_radius),
                                                             cache=cache if nk or known is None else None)
    flags |= pflags
    flags |= aflags
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
