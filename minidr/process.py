"""Single-visit processing of one (visit, detector): ISR (:func:`minidr.isr.run`) ->
characterisation -> calibration (:func:`process_exposure`).

:func:`process_exposure` is pure: an ISR-corrected exposure and tables in, a :class:`FrameResult`
out. Reading raws and calibrations and writing outputs is :mod:`minidr.pipeline`'s job (which
lets the raw frame and the masters go once ISR is done, before characterisation).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from .calibrate import astrometry, photometry
from .calibrate import refcat as refcat_mod
from .config import Config
from .errors import AlgorithmError
from .image.characterize import characterize
from .plugins import measure as measure_plugins
from .products import SourceFlag, ccd_visit_id, source_id
from .units import ARCSEC_PER_DEG, inst_to_njy_scale

BAD_FOR_ASTROMETRY = SourceFlag.SATURATED | SourceFlag.EDGE | SourceFlag.BAD | SourceFlag.CR
"""Sources never used to fit the WCS (the zero point applies its own, stricter flag cut)."""


@dataclass
class FrameResult:
    """Everything single-visit processing produces for one frame."""

    exposure: object            #: minidr.products.Exposure, background-subtracted, fitted WCS
    sources: pa.Table           #: Source rows (no objectId yet)
    ccdvisit: dict              #: the CcdVisit row
    psf: dict                   #: PsfModel.to_dict()
    timings: dict = field(default_factory=dict)  #: CPU seconds per step (all threads of the process)
    wall: dict = field(default_factory=dict)     #: wall-clock seconds per step


class Steps:
    """CPU (``time.process_time``: every thread of the process) and wall seconds per step."""

    def __init__(self, cpu: dict | None = None, wall: dict | None = None):
        self.cpu = {} if cpu is None else cpu
        self.wall = {} if wall is None else wall

    @contextmanager
    def __call__(self, name: str):
        c0, w0 = time.process_time(), time.perf_counter()
        try:
            yield
        finally:
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - c0
            self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - w0


def process_exposure(exp, refcat: pa.Table, cfg: Config, plugins=(), steps: Steps | None = None) -> FrameResult:
    """Characterise and calibrate one ISR-corrected exposure (consumed: its image becomes the
    background-subtracted one) into calibrated Sources and a CcdVisit row.

    ``plugins``: loaded :class:`minidr.plugins.Plugin` measurements whose columns are
    appended to the Source rows (see :mod:`minidr.plugins`). Raises :class:`~minidr.errors.AlgorithmError` (with numbers) when the frame cannot be
    calibrated: the pipeline records it and carries on with the other frames.
    """
    info = exp.info
    step = steps if steps is not None else Steps()
    with step("characterize"):
        char = characterize(exp.image, exp.variance, exp.mask, cfg)
    # keep only what the outputs need: the background maps and the footprint image go now
    src = char.sources
    psf = char.psf
    fwhm, sky, sky_rms = char.fwhm, char.sky, char.sky_rms
    exp.image = np.asarray(char.image_bgsub, dtype=np.float32)  # the ISR image goes (float32: no copy)
    del char
    if len(src) == 0:
        raise AlgorithmError(f"no sources detected on visit {info.visit} detector {info.detector}", n_sources=0)

    if exp.wcs is None:
        raise AlgorithmError(f"visit {info.visit} detector {info.detector}: no header WCS to start astrometry from")
    with step("astrometry"):
        refs = refcat_mod.select(refcat, exp.wcs, info.shape, info.band, cfg.refcat)
        usable = (src["flags"] & int(BAD_FOR_ASTROMETRY)) == 0
        idx = np.flatnonzero(usable)
        ast = astrometry.fit_wcs(
            src["x"][idx], src["y"][idx], src["psfFlux"][idx], exp.wcs, info.shape,
            refs.ra, refs.dec, refs.mag, cfg.astrometry, xerr=src["xErr"][idx], yerr=src["yErr"][idx],
        )
        matched_src = idx[ast.src_index]

    with step("photometry"):
        phot = photometry.zero_point(
            src["psfFlux"][matched_src], src["psfFluxErr"][matched_src], refs.mag[ast.ref_index],
            cfg.photometry, flags=src["flags"][matched_src],
        )

    ra, dec = astrometry.pixel_to_sky(ast.wcs, src["x"], src["y"])
    ra_err, dec_err = astrometry.radec_errors(ast.wcs, src["x"], src["y"], src["xErr"], src["yErr"])
    scale = inst_to_njy_scale(phot.zero_point)
    cvid = int(ccd_visit_id(info.visit, info.detector))
    n = len(src)
    mjd = info.midpoint_mjd
    pixscale = _pixel_scale_arcsec(ast.wcs)

    sources = pa.table({
        "sourceId": source_id(cvid, np.arange(n)),
        "ccdVisitId": np.full(n, cvid, dtype=np.int64),
        "visit": np.full(n, info.visit, dtype=np.int64),
        "detector": np.full(n, info.detector, dtype=np.int32),
        "band": pa.array([info.band] * n, type=pa.string()),
        "midpointMjdTai": np.full(n, mjd),
        "ra": ra, "dec": dec, "raErr": ra_err, "decErr": dec_err,
        "x": src["x"], "y": src["y"], "xErr": src["xErr"], "yErr": src["yErr"],
        "psfFlux": src["psfFlux"] * scale, "psfFluxErr": _with_zp_error(src["psfFlux"], src["psfFluxErr"], phot) * scale,
        "apFlux": src["apFlux"] * scale, "apFluxErr": _with_zp_error(src["apFlux"], src["apFluxErr"], phot) * scale,
        "ixx": src["ixx"], "iyy": src["iyy"], "ixy": src["ixy"],
        "sky": src["sky"] * scale,
        "extendedness": src["extendedness"], "snr": src["snr"],
        "flags": src["flags"].astype(np.int32),
    })
    if plugins:
        with step("plugins"):
            extra = measure_plugins(list(plugins), exp.image, exp.variance, exp.mask, src["x"], src["y"],
                                    psf.fwhm_at(src["x"], src["y"]), scale)
            for p in plugins:
                for f in p.fields():
                    sources = sources.append_column(f, extra[f.name])

    ny, nx = info.shape
    cra, cdec = astrometry.pixel_to_sky(ast.wcs, np.array([(nx - 1) / 2.0]), np.array([(ny - 1) / 2.0]))
    ccdvisit = {
        "ccdVisitId": cvid,
        "visit": int(info.visit),
        "detector": int(info.detector),
        "band": info.band,
        "midpointMjdTai": float(mjd),
        "obsStartMjd": float(info.mjd),
        "expTime": float(info.exptime),
        "ra": float(cra[0]),
        "dec": float(cdec[0]),
        "pointingRa": info.ra,
        "pointingDec": info.dec,
        "seeing": float(fwhm * pixscale),
        "psfFwhm": float(fwhm),
        "pixelScale": float(pixscale),
        "skyBg": float(sky),
        "skyNoise": float(sky_rms),
        "zeroPoint": float(phot.zero_point),
        "zeroPointErr": float(phot.zero_point_err),
        "nPhotStars": int(phot.n_stars),
        "astromRms": float(ast.rms),
        "astromNMatch": int(ast.n_matches),
        "wcsOffset": float(ast.offset),
        "wcsRotation": float(ast.rotation),
        "nSources": int(n),
        "rawPath": info.path,
    }
    exp.wcs = ast.wcs
    exp.metadata.update({"zeroPoint": float(phot.zero_point), "band": info.band, "visit": int(info.visit),
                         "detector": int(info.detector), "midpointMjdTai": float(mjd),
                         "skyBg": float(sky), "psfFwhm": float(fwhm)})
    return FrameResult(exposure=exp, sources=sources, ccdvisit=ccdvisit, psf=psf.to_dict(), timings=step.cpu,
                       wall=step.wall)


def _with_zp_error(flux, flux_err, phot) -> np.ndarray:
    """Flux errors with the zero point's uncertainty added in quadrature (as LSST's
    PhotoCalib propagates its calibration error into nJy errors)."""
    rel = np.log(10.0) / 2.5 * phot.zero_point_err
    return np.sqrt(flux_err**2 + (flux * rel) ** 2)


def _pixel_scale_arcsec(wcs) -> float:
    """Mean pixel scale of a celestial WCS at its reference pixel, arcsec/pixel."""
    from astropy.wcs.utils import proj_plane_pixel_scales

    return float(np.mean(proj_plane_pixel_scales(wcs.celestial)) * ARCSEC_PER_DEG)
