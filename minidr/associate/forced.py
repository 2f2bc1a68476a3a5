"""Forced photometry: PSF fluxes of every Object that falls on a frame, detected or not.

Light curves then include non-detections. The photometry itself is
:func:`minidr.image.measure.psf_flux_at` (the same fixed-position PSF fit as Source's
``psfFlux``); this module only selects the Objects on the frame, places them with the
frame's WCS and flags those too close to the edge.
"""

from __future__ import annotations

import numpy as np

from minidr.errors import InputError
from minidr.products import SourceFlag

FORCED_KEYS = ("objectId", "x", "y", "psfFlux", "psfFluxErr", "flags")


def _unit(ra_deg, dec_deg):
    ra = np.radians(ra_deg)
    dec = np.radians(dec_deg)
    cd = np.cos(dec)
    return np.stack([cd * np.cos(ra), cd * np.sin(ra), np.sin(dec)], axis=-1)


def _candidates(wcs, shape, ra, dec) -> np.ndarray:
    """Rows of (ra, dec) within the frame's circumscribed circle (plus margin): a cheap
    superset of the Objects on the frame, so the full WCS is evaluated only near it."""
    ny, nx = shape
    px = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5, 0.5 * (nx - 1), 0.5 * (nx - 1), -0.5, nx - 0.5])
    py = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5, -0.5, ny - 0.5, 0.5 * (ny - 1), 0.5 * (ny - 1)])
    cra, cdec = wcs.all_pix2world(np.array([0.5 * (nx - 1)]), np.array([0.5 * (ny - 1)]), 0)
    bra, bdec = wcs.all_pix2world(px, py, 0)
    c = _unit(cra, cdec)[0]
    cos_max = np.min(_unit(bra, bdec) @ c)
    radius = np.arccos(np.clip(cos_max, -1.0, 1.0)) * 1.2 + np.radians(1.0 / 60.0)
    return np.flatnonzero(_unit(ra, dec) @ c >= np.cos(min(radius, np.pi)))


def measure_frame(image_bgsub, variance, mask, wcs, psf, object_ids, object_ra, object_dec) -> dict[str, np.ndarray]:
    """Forced PSF photometry of the Objects that fall on one frame.

    ``image_bgsub`` [e-, background subtracted], ``variance`` [e^2], ``mask`` (MaskBit plane or
    None) are 2-D arrays indexed [y, x]; ``wcs`` an astropy WCS of the frame (0-based pixels);
    ``psf`` a :class:`minidr.image.psf.PsfModel`; ``object_ids`` (int64), ``object_ra``,
    ``object_dec`` [deg] the Objects (any number; those off the frame are skipped).

    Returns a dict of equal-length arrays, one entry per Object whose centre lies on the
    frame (``-0.5 <= x < nx - 0.5``, same in y), in the input order: ``objectId`` (int64),
    ``x``, ``y`` [pixels], ``psfFlux``, ``psfFluxErr`` [electrons], ``flags`` (int32
    SourceFlag bits; EDGE when closer than half a PSF stamp, ``psf.fit_radius``, to the edge).
    """
    from minidr.image.measure import psf_flux_at  # the detection engineer's PSF fit

    image = np.asarray(image_bgsub)
    if image.ndim != 2:
        raise InputError("image must be 2-D", keyword="image_bgsub")
    if np.shape(variance) != image.shape or (mask is not None and np.shape(mask) != image.shape):
        raise InputError("image, variance and mask must have the same shape", keyword="variance")
    if wcs is None:
        raise InputError("forced photometry needs the frame's WCS", keyword="wcs")
    ids = np.asarray(object_ids, dtype=np.int64).ravel()
    ra = np.asarray(object_ra, dtype=np.float64).ravel()
    dec = np.asarray(object_dec, dtype=np.float64).ravel()
    if not (ids.size == ra.size == dec.size):
        raise InputError("object_ids, object_ra and object_dec differ in length", keyword="object_ids")

    ny, nx = image.shape
    empty = {"objectId": np.zeros(0, np.int64), "x": np.zeros(0), "y": np.zeros(0),
             "psfFlux": np.zeros(0), "psfFluxErr": np.zeros(0), "flags": np.zeros(0, np.int32)}
    if ids.size == 0:
        return empty
    cand = _candidates(wcs, image.shape, ra, dec)
    if cand.size == 0:
        return empty
    x, y = wcs.all_world2pix(ra[cand], dec[cand], 0, quiet=True)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    on = np.isfinite(x) & np.isfinite(y) & (x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5)
    rows = cand[on]
    x = x[on]
    y = y[on]
    if rows.size == 0:
        return empty
    flux, err, flags = psf_flux_at(image, variance, mask, psf, x, y)
    r = psf.fit_radius
    edge = (x < r) | (y < r) | (x > nx - 1 - r) | (y > ny - 1 - r)
    flags = np.asarray(flags, dtype=np.int32) | np.where(edge, np.int32(SourceFlag.EDGE), np.int32(0))
    return {
        "objectId": ids[rows],
        "x": x,
        "y": y,
        "psfFlux": np.asarray(flux, dtype=np.float64),
        "psfFluxErr": np.asarray(err, dtype=np.float64),
        "flags": flags.astype(np.int32),
    }
