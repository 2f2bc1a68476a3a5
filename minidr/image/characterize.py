"""The whole characterisation of one image: background -> detection with an initial PSF
guess -> PSF model from bright isolated stars -> detection with the fitted PSF ->
deblending -> measurement (see docs/measurement.md)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import Config
from ..errors import AlgorithmError
from ..products import MaskBit, SourceFlag
from . import kernels
from .background import Background
from .detect import Detections, detect_sources
from .measure import EXCLUDE_BITS, FLAG_MAP, extendedness, measure_sources
from .psf import PsfModel, fit_psf


@dataclass
class Characterization:
    """Result of :func:`characterize` for one image."""

    sources: np.ndarray        #: SOURCE_DTYPE structured array (see minidr.image.measure)
    psf: PsfModel
    background: Background
    image_bgsub: np.ndarray    #: float32 image minus background [e-]
    fwhm: float                #: PSF FWHM at the detector centre [pixels]
    sky: float                 #: median background level [e-/pixel]
    sky_rms: float             #: median background noise [e-/pixel]
    detections: Detections | None = None


def _check_input(image, variance, mask):
    image = np.ascontiguousarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise AlgorithmError(f"image must be 2-d, got shape {image.shape}", shape=image.shape)
    if mask is None:
        mask = np.zeros(image.shape, dtype=np.uint16)
    mask = np.ascontiguousarray(mask, dtype=np.uint16)
    variance = np.ascontiguousarray(variance, dtype=np.float32)
    if variance.shape != image.shape or mask.shape != image.shape:
        raise AlgorithmError("image, variance and mask shapes differ", shape=image.shape)
    nfin, nuse, nsat = kernels.count_usable(image, mask, EXCLUDE_BITS, int(MaskBit.SAT))
    if nfin == 0:
        raise AlgorithmError(f"image has no finite pixels (0 of {image.size})", n_finite=0, n_pixels=image.size)
    if nuse < 0.01 * image.size:
        raise AlgorithmError(
            f"image has only {nuse} usable pixels of {image.size} ({nsat} saturated, {image.size - nfin} not finite)",
            n_usable=nuse, n_saturated=nsat, n_pixels=image.size)
    return image, variance, mask


def characterize(image, variance, mask, cfg: Config = Config()) -> Characterization:
    """Background, PSF, detection, deblending and measurement of one image.

    ``image`` [e-, sky not subtracted], ``variance`` [e^2], ``mask`` (MaskBit plane) as
    produced by ISR. Raises :class:`AlgorithmError` (with numbers) for an unusable image or
    when too few stars model the PSF.
    """
    image, variance, mask = _check_input(image, variance, mask)
    bg = Background(image, mask, cfg.background)
    back = bg.back()
    bgsub = np.subtract(image, back, dtype=np.float32)
    rms = bg.rms()
    fwhm0 = float(cfg.psf.initial_fwhm)
    det0 = detect_sources(bgsub, variance, mask, rms, fwhm0, cfg.detection)
    try:
        psf = fit_psf(bgsub, variance, mask, det0.x, det0.y, cfg.psf, fwhm_guess=fwhm0,
                      footprints=det0.footprints)
    except AlgorithmError:
        # sparse or shallow images: try again with a lower S/N cut before giving up
        from dataclasses import replace

        psf = fit_psf(bgsub, variance, mask, det0.x, det0.y,
                      replace(cfg.psf, min_snr=cfg.psf.min_snr / 2.5), fwhm_guess=fwhm0,
                      footprints=det0.footprints)
    del det0  # its footprint image is as large as the frame
    det = detect_sources(bgsub, variance, mask, rms, psf.fwhm, cfg.detection)
    cache = {}
    src = measure_sources(bgsub, variance, mask, psf, det.x.astype(float), det.y.astype(float),
                          cfg.measurement, sky=back, groups=det.footprint, cache=cache)
    if cfg.detection.residual_pass:
        extra = _residual_peaks(bgsub, variance, mask, rms, psf, src, cfg,
                                cache.get("stamps", np.zeros((0, 1, 1), np.float32)))
        if extra[0].size:
            n_before = len(src)
            det = _add_peaks(det, extra, bgsub, psf.fwhm)
            # a residual peak whose centroid walks onto a known source is that source again
            # (the same centroid as measure_sources finds: it depends on nothing else)
            px, py = extra[1].astype(float), extra[0].astype(float)
            cx, cy, _, _, _ = kernels.windowed_centroid_kernel(bgsub, variance, mask, px, py,
                                                                psf.fwhm_at(px, py) / 2.3548,
                                                                EXCLUDE_BITS, 40, 1e-4)
            dup = _duplicates(np.concatenate([src["x"], cx]), np.concatenate([src["y"], cy]), n_before,
                              max(1.0, 0.5 * psf.fwhm))
            if dup.any():
                det = _subset(det, ~dup)
                det.nchild[:] = np.bincount(det.footprint)[det.footprint]
            src = measure_sources(bgsub, variance, mask, psf, det.x.astype(float), det.y.astype(float),
                                  cfg.measurement, sky=back, groups=det.footprint, known=src, cache=cache)
    src["npix"] = det.npix
    src["peak"] = det.peak
    src["parent"] = det.footprint
    src["nchild"] = det.nchild
    src["flags"] |= np.where(det.nchild >= 2, int(SourceFlag.BLENDED), 0).astype(np.int32)
    # cosmic rays: far sharper than the PSF
    cr = _cosmic_rays(src, bgsub, variance, cfg.detection.cr_sharpness)
    # deblended fragments whose centroid never converged, not significant on their own and
    # with no shape or a streak-like one (second moment > 50 times the PSF's) are pieces
    # of halos and bleed trails, not objects
    streak = 50.0 * (psf.fwhm / 2.3548) ** 2
    with np.errstate(invalid="ignore"):
        shapeless = ~(np.fmax(src["ixx"], src["iyy"]) <= streak)
    fragment = (((src["flags"] & int(SourceFlag.BLENDED | SourceFlag.CENTROID))
                 == int(SourceFlag.BLENDED | SourceFlag.CENTROID)) & ~(src["snr"] >= 10) & shapeless)
    _saturated_centroids(src, mask)
    # a centroid within 1 pixel of the detector edge belongs to an object centred off it
    ny, nx = bgsub.shape
    off = (src["x"] < 1.0) | (src["y"] < 1.0) | (src["x"] > nx - 2.0) | (src["y"] > ny - 2.0)
    det_keep = ~(cr | fragment | off)
    src = src[det_keep]
    # aperture correction and the star normalisation of extendedness from clean bright stars
    good = (src["flags"] == 0) & (src["snr"] > 20) & (src["nchild"] == 1) & _near(src, psf.stars, 1.0)
    if good.sum() >= 3:
        psf, src = _aperture_correction(bgsub, variance, mask, psf, src, good, cfg)
    src = _finish(src)
    sky = float(bg.global_back)
    return Characterization(sources=src, psf=psf, background=bg, image_bgsub=bgsub, fwhm=psf.fwhm,
                            sky=sky, sky_rms=float(bg.global_rms), detections=_subset(det, det_keep))


def _aperture_correction(bgsub, variance, mask, psf, src, good, cfg):
    """Normalise extendedness so that the PSF stars give psfFlux / apFlux = 1; with
    ``cfg.measurement.empirical_apcorr``, also scale PSF fluxes to the flux in a large
    aperture (4 FWHM) of those stars (times the model's enclosed fraction there): robust to
    a PSF model of the wrong shape, but biased by neighbours in crowded images."""
    from .measure import enclosed_fraction

    rbig = 4.0
    g = np.flatnonzero(good)
    r = np.full(g.size, rbig * psf.fwhm)
    af, _, _, afl = kernels.aperture_flux_kernel(bgsub, variance, mask, src["x"][g], src["y"][g], r,
                                                 EXCLUDE_BITS, FLAG_MAP, int(SourceFlag.EDGE))
    ok = (afl == 0) & (af > 0)
    if cfg.measurement.empirical_apcorr and ok.sum() >= 3:
        ratio = af[ok] / src["psfFlux"][g][ok]
        corr = float(np.median(ratio)) / enclosed_fraction(psf, rbig)
        if 0.8 < corr < 1.25:
            psf.apcorr *= corr
            for f in ("psfFlux", "psfFluxErr"):
                src[f] *= corr
    mcfg = cfg.measurement
    star_ratio = float(np.median(src["apFlux"][g] / src["psfFlux"][g]))
    if np.isfinite(star_ratio) and star_ratio > 0:
        with np.errstate(invalid="ignore", divide="ignore"):
            src["extendedness"] = extendedness(src["psfFlux"], src["psfFluxErr"], src["apFlux"] / star_ratio,
                                               src["apFluxErr"] / star_ratio, mcfg.extendedness_ratio,
                                               mcfg.extendedness_nsigma)
    psf.star_ratio = star_ratio
    # a point source whose aperture caught some neighbour light is still PSF-sized: ask
    # for a size (adaptive moments) clearly above the PSF's too
    t = src["ixx"] + src["iyy"]
    tpsf = float(np.nanmedian(t[g]))
    small = np.isfinite(t) & (t < (1.0 + mcfg.extendedness_size) * tpsf)
    src["extendedness"][small & (src["extendedness"] == 1.0)] = 0.0
    # saturated sources: neither flux is trustworthy
    src["extendedness"][(src["flags"] & int(SourceFlag.SATURATED)) != 0] = np.nan
    return psf, src


def _residual_peaks(bgsub, variance, mask, rms, psf, src, cfg, stamps):
    """Peaks of the image minus the PSF models of the point sources found so far (faint
    stars on the shoulders of brighter ones, which make no peak of their own in the
    smoothed image). Returns (y, x) int arrays of new peaks: above ``cfg.detection.threshold``
    sigma of the smoothed noise (variance plane, including the sources' Poisson noise), more
    than 0.8 FWHM from every known source and away from saturated ones and extended ones
    larger than 1.5 times the PSF in ixx + iyy. ``stamps`` are the sources' PSF stamps (as
    measured, radius 1.5 ``fit_radius``)."""
    from scipy.spatial import cKDTree

    from .detect import find_peaks

    ny, nx = bgsub.shape
    t = src["ixx"] + src["iyy"]
    ps = _near(src, psf.stars, 1.0)
    tpsf = float(np.nanmedian(t[ps])) if ps.any() else np.inf
    big = (src["extendedness"] == 1.0) & ~(t < 1.5 * tpsf)
    point = ~big & ((src["flags"] & int(SourceFlag.SATURATED)) == 0)
    flux = np.where(point, src["psfFlux"] / psf.apcorr, 0.0)
    resid = kernels.render_stamps(ny, nx, np.ascontiguousarray(src["x"]), np.ascontiguousarray(src["y"]), flux,
                                  stamps)
    np.subtract(bgsub, resid, out=resid)
    # matched filter, threshold on sqrt(max(variance, rms^2)), deblending: runs only, no
    # full-frame smoothed, noise, boolean or label image (the same peaks)
    py, px, npix = find_peaks(resid, mask, rms, variance, psf.fwhm, cfg.detection, noise_variance=True)
    del resid
    if py.size == 0 or len(src) == 0:
        return py, px
    tree = cKDTree(np.column_stack([src["x"], src["y"]]))
    d, _ = tree.query(np.column_stack([px, py]))
    keep = d > 0.8 * psf.fwhm
    avoid = ~point
    if avoid.any() and keep.any():
        ax, ay = src["x"][avoid], src["y"][avoid]
        size = np.sqrt(np.nan_to_num(src["ixx"][avoid] + src["iyy"][avoid], nan=0.0))
        rad = np.clip(2.0 * size, 2.0 * psf.fwhm, 4.0 * psf.fwhm)
        at = cKDTree(np.column_stack([ax, ay]))
        cand = np.flatnonzero(keep)
        for i, nb in zip(cand, at.query_ball_point(np.column_stack([px[cand], py[cand]]), rad.max())):
            if nb and (np.hypot(px[i] - ax[nb], py[i] - ay[nb]) < rad[nb]).any():
                keep[i] = False
    return py[keep], px[keep]


def _add_peaks(det: Detections, extra, bgsub, fwhm) -> Detections:
    """Detections with extra peaks added (footprint ids from the grown footprint image)."""
    py, px = extra
    fl = det.footprints
    fp_new = fl[py, px].astype(np.int64) - 1
    # peaks outside any footprint get new ids
    out = fp_new < 0
    nf = int(fl.max())
    fp_new[out] = nf + np.arange(out.sum())
    x = np.concatenate([det.x, px])
    y = np.concatenate([det.y, py])
    fp = np.concatenate([det.footprint, fp_new])
    counts = np.bincount(fp)
    return Detections(x=x, y=y, peak=np.concatenate([det.peak, bgsub[py, px].astype(float)]),
                      significance=np.concatenate([det.significance, np.full(py.size, np.nan)]),
                      core=np.concatenate([det.core, np.full(py.size, -1)]), footprint=fp,
                      npix=np.concatenate([det.npix, np.zeros(py.size, np.int64)]), nchild=counts[fp],
                      footprints=det.footprints, fwhm=det.fwhm)


def _cosmic_rays(src, bgsub, variance, cut):
    """Detections far sharper than the PSF: centre pixel above ``cut`` times the fitted
    PSF model's value there, the excess being also > 5 sigma of that pixel's noise."""
    sh = src["sharpness"]
    ny, nx = bgsub.shape
    ix = np.clip(np.floor(src["x"] + 0.5).astype(int), 0, nx - 1)
    iy = np.clip(np.floor(src["y"] + 0.5).astype(int), 0, ny - 1)
    dc = bgsub[iy, ix].astype(np.float64)
    vc = np.maximum(variance[iy, ix].astype(np.float64), 1e-30)
    with np.errstate(invalid="ignore", divide="ignore"):
        excess = dc * (1.0 - 1.0 / sh)
        return np.isfinite(sh) & (sh > cut) & (excess > 5.0 * np.sqrt(vc))


def _saturated_centroids(src, mask) -> None:
    """Centroids of saturated sources from their saturated core: the mean position of the
    connected SAT pixels under the source (a windowed centroid wanders on a flat-topped,
    clipped core). Their position errors become the core's size / sqrt(12) [pixels]."""
    from scipy import ndimage

    sat = (src["flags"] & int(SourceFlag.SATURATED)) != 0
    if not sat.any():
        return
    labels, n = ndimage.label((mask & int(MaskBit.SAT)) != 0)
    if n == 0:
        return
    boxes = ndimage.find_objects(labels)
    ny, nx = mask.shape
    for i in np.flatnonzero(sat):
        ix = int(np.clip(round(src["x"][i]), 0, nx - 1))
        iy = int(np.clip(round(src["y"][i]), 0, ny - 1))
        win = labels[max(iy - 3, 0):iy + 4, max(ix - 3, 0):ix + 4]
        ids = win[win > 0]
        if ids.size == 0:
            continue
        lab = int(np.bincount(ids).argmax())
        box = boxes[lab - 1]
        yy, xx = np.nonzero(labels[box] == lab)
        yy = yy + box[0].start
        xx = xx + box[1].start
        src["x"][i], src["y"][i] = xx.mean(), yy.mean()
        src["xErr"][i] = np.fmax(src["xErr"][i], np.ptp(xx) / np.sqrt(12) + 0.1)
        src["yErr"][i] = np.fmax(src["yErr"][i], np.ptp(yy) / np.sqrt(12) + 0.1)


def _duplicates(x, y, first_new: int, radius: float) -> np.ndarray:
    """True for sources at index >= ``first_new`` whose centroid (x, y) [pixels] lies within
    ``radius`` pixels of an earlier source (or of a kept later one): the same object found
    twice."""
    from scipy.spatial import cKDTree

    n = x.size
    dup = np.zeros(n, bool)
    if first_new >= n or n < 2:
        return dup
    xy = np.column_stack([x, y])
    tree = cKDTree(xy)
    for i in range(first_new, n):
        for j in tree.query_ball_point(xy[i], radius):
            if j != i and (j < first_new or (j < i and not dup[j])):
                dup[i] = True
                break
    return dup


def _near(src, xy, radius):
    """True for sources within ``radius`` pixels of one of the positions ``xy``."""
    from scipy.spatial import cKDTree

    if len(xy[0]) == 0 or len(src) == 0:
        return np.zeros(len(src), bool)
    d, _ = cKDTree(np.column_stack(xy)).query(np.column_stack([src["x"], src["y"]]))
    return d <= radius


def _finish(src):
    with np.errstate(invalid="ignore", divide="ignore"):
        src["snr"] = src["psfFlux"] / src["psfFluxErr"]
    order = np.lexsort((src["x"], src["y"]))
    return np.ascontiguousarray(src[order])


def _subset(det: Detections, keep) -> Detections:
    return Detections(x=det.x[keep], y=det.y[keep], peak=det.peak[keep], significance=det.significance[keep],
                      core=det.core[keep], footprint=det.footprint[keep], npix=det.npix[keep],
                      nchild=det.nchild[keep], footprints=det.footprints, fwhm=det.fwhm)
