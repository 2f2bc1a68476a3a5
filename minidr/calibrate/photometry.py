"""Photometric calibration of one frame: the zero point against reference stars.

Convention: ``mag_AB = zero_point - 2.5 log10(inst_flux [e-])``, so calibrated fluxes are
``flux_nJy = inst_flux * 10**((31.4 - zero_point) / 2.5)`` (:func:`to_njy`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from minidr.config import PhotometryConfig
from minidr.errors import AlgorithmError
from minidr.products import SourceFlag
from minidr.units import inst_to_njy_scale

BAD_FOR_ZERO_POINT = (SourceFlag.SATURATED | SourceFlag.EDGE | SourceFlag.BAD | SourceFlag.CR
                      | SourceFlag.INTERPOLATED | SourceFlag.PSF_FIT)
"""Matched stars with any of these flags are left out of the zero point."""

_MAG_PER_LN = 2.5 / math.log(10.0)


@dataclass(frozen=True)
class PhotometryResult:
    """Zero point [mag, for fluxes in e-] of one frame, its 1-sigma error [mag] and the
    number of stars that went into it."""

    zero_point: float
    zero_point_err: float
    n_stars: int


def _wmean(z, w):
    sw = w.sum()
    return float((w * z).sum() / sw), sw


def zero_point(inst_flux, inst_flux_err, ref_mag, cfg: PhotometryConfig, flags=None) -> PhotometryResult:
    """Zero point from matched stars: ``zp_i = ref_mag_i + 2.5 log10(inst_flux_i)``.

    ``inst_flux`` and ``inst_flux_err`` are instrumental PSF fluxes [e-] of the sources
    matched to reference stars of AB magnitude ``ref_mag`` (same order); ``flags`` their
    :class:`SourceFlag` bits (saturated, edge, bad, cosmic-ray, interpolated or failed-fit
    stars are dropped). Stars with S/N below ``cfg.min_snr`` are dropped. Starting from the
    median, stars further than ``cfg.clip_sigma`` robust sigma (MAD, with each star's own
    error in quadrature) are rejected iteratively; the result is the inverse-variance
    weighted mean of the rest with a ``cfg.error_floor`` mag per-star floor (covering
    reference-catalog errors). Its error is that of the weighted mean, scaled up by
    sqrt(reduced chi2) when the scatter exceeds the errors.

    Raises :class:`AlgorithmError` (metadata ``n_stars``) with fewer than ``cfg.min_stars``.
    """
    f = np.asarray(inst_flux, dtype=np.float64).ravel()
    e = np.asarray(inst_flux_err, dtype=np.float64).ravel()
    m = np.asarray(ref_mag, dtype=np.float64).ravel()
    if not (f.shape == e.shape == m.shape):
        raise ValueError("inst_flux, inst_flux_err and ref_mag must have the same length")
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = f / e
        ok = np.isfinite(f) & np.isfinite(e) & np.isfinite(m) & (f > 0) & (e > 0) & (snr >= cfg.min_snr)
    if flags is not None:
        fl = np.asarray(flags).ravel().astype(np.int64)
        if fl.shape != f.shape:
            raise ValueError("flags must have the same length as inst_flux")
        ok &= (fl & int(BAD_FOR_ZERO_POINT)) == 0
    n_ok = int(ok.sum())
    if n_ok < cfg.min_stars:
        raise AlgorithmError(f"too few stars for the zero point: {n_ok} unsaturated matched stars with "
                             f"S/N >= {cfg.min_snr} (need {cfg.min_stars})", n_stars=n_ok)
    z = m[ok] + 2.5 * np.log10(f[ok])
    sig = np.hypot(_MAG_PER_LN / snr[ok], cfg.error_floor)
    keep = np.ones(z.size, dtype=bool)
    centre = float(np.median(z))
    for _ in range(10):
        d = z - centre
        mad = 1.4826 * float(np.median(np.abs(d[keep])))
        # robust scatter of the population, each star judged with its own error added
        scatter = math.sqrt(max(mad**2 - float(np.median(sig[keep])) ** 2, 0.0))
        new = np.abs(d) <= cfg.clip_sigma * np.sqrt(sig**2 + scatter**2)
        if new.sum() < cfg.min_stars:
            break
        centre, _ = _wmean(z[new], 1.0 / sig[new] ** 2)
        if np.array_equal(new, keep):
            break
        keep = new
    zk = z[keep]
    w = 1.0 / sig[keep] ** 2
    zp, sw = _wmean(zk, w)
    n = int(keep.sum())
    err = 1.0 / math.sqrt(sw)
    if n > 1:
        chi2 = float((w * (zk - zp) ** 2).sum()) / (n - 1)
        err *= math.sqrt(max(chi2, 1.0))
    if n < cfg.min_stars:
        raise AlgorithmError(f"too few stars for the zero point after clipping: {n} (need {cfg.min_stars})",
                             n_stars=n)
    return PhotometryResult(zero_point=zp, zero_point_err=err, n_stars=n)


def to_njy(inst_flux, zero_point: float):
    """Calibrated flux [nJy] of instrumental fluxes [e-] under ``zero_point`` [mag]:
    ``inst_flux * 10**((31.4 - zero_point) / 2.5)``."""
    return np.asarray(inst_flux, dtype=np.float64) * inst_to_njy_scale(zero_point)
