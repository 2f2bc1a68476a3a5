"""Hand-off types between stages. Shape and dtype checks only, no algorithms.

Conventions (everywhere in minidr):

* pixel coordinates are 0-based, pixel centres at integers, arrays indexed ``[y, x]``;
* sections are 0-based half-open ``[y0:y1, x0:x1]`` slices (IRAF 1-based inclusive
  sections are converted once, in :mod:`minidr.raw.headers`);
* images are float32 in electrons after ISR, variance in electrons^2, masks uint16 bit planes;
* positions in degrees (ICRS), times in MJD (TAI), fluxes in nJy once calibrated.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np


class MaskBit(enum.IntFlag):
    """Bits of the per-pixel mask plane of an :class:`Exposure`."""

    SAT = 1          #: at or above the amplifier's SATURATE level (or bled from it)
    BAD = 2          #: bad column / dead pixel (flat response far from 1)
    HOT = 4          #: hot pixel (dark current far above the median)
    CR = 8           #: cosmic ray hit
    NO_DATA = 16     #: no valid data (NaN, outside the illuminated area)
    DETECTED = 32    #: inside a detection footprint
    INTERP = 64      #: value interpolated over a masked pixel


class SourceFlag(enum.IntFlag):
    """Bits of the ``flags`` column of Source (documented in docs/flags.md)."""

    SATURATED = 1    #: a saturated pixel within the footprint/aperture
    EDGE = 2         #: aperture or PSF footprint runs off the detector
    BLENDED = 4      #: child of a deblended footprint with 2+ peaks
    CR = 8           #: a cosmic-ray pixel within the aperture
    BAD = 16         #: a bad, hot or no-data pixel within the aperture
    INTERPOLATED = 32  #: an interpolated pixel within the aperture
    CENTROID = 64    #: centroid did not converge; peak position used
    SHAPE = 128      #: second moments did not converge
    PSF_FIT = 256    #: PSF flux fit failed or is not finite


BAD_FOR_AGGREGATES = SourceFlag.SATURATED | SourceFlag.EDGE | SourceFlag.BAD | SourceFlag.CR
"""Sources with any of these flags stay in Source but are left out of Object statistics."""


@dataclass(frozen=True)
class Section:
    """A 0-based, half-open pixel rectangle ``[y0:y1, x0:x1]``.

    For a DETSEC, ``flip_x``/``flip_y`` say that the amplifier reads out in the other
    direction: the amplifier's data must be reversed along that axis before it is placed.
    """

    y0: int
    y1: int
    x0: int
    x1: int
    flip_x: bool = False
    flip_y: bool = False

    @property
    def shape(self) -> tuple[int, int]:
        return (self.y1 - self.y0, self.x1 - self.x0)

    @property
    def slices(self) -> tuple[slice, slice]:
        return (slice(self.y0, self.y1), slice(self.x0, self.x1))


@dataclass(frozen=True)
class AmpInfo:
    """One amplifier of a raw frame: where its data, overscan and place in the detector are."""

    name: str
    hdu: int              #: HDU index in the raw file that holds this amplifier's pixels
    datasec: Section      #: illuminated pixels within the amplifier's array
    biassec: Section      #: overscan pixels within the amplifier's array
    detsec: Section       #: place in the assembled detector (with read-out direction)
    gain: float           #: e-/ADU
    rdnoise: float        #: read noise, e-
    saturate: float       #: saturation level, ADU


IMAGE_TYPES = ("science", "bias", "dark", "flat")


@dataclass(frozen=True)
class RawInfo:
    """Header metadata of one raw file (one exposure of one detector)."""

    path: str
    imagetyp: str          #: one of IMAGE_TYPES
    exptime: float         #: seconds
    mjd: float             #: MJD at start of exposure
    band: str | None       #: None for bias/dark
    visit: int             #: EXPID
    detector: int
    instrument: str
    ra: float | None       #: pointing, degrees
    dec: float | None      #: pointing, degrees
    shape: tuple[int, int]  #: assembled detector (ny, nx)
    amps: tuple[AmpInfo, ...]
    wcs_header: dict | None = None  #: approximate TAN WCS keywords of the assembled detector
    bitpix: int = 16

    @property
    def midpoint_mjd(self) -> float:
        return self.mjd + 0.5 * self.exptime / 86400.0


@dataclass
class RawExposure:
    """A raw frame: its metadata and one integer ADU array per amplifier (with overscan)."""

    info: RawInfo
    amp_pixels: list[np.ndarray]

    def __post_init__(self):
        if len(self.amp_pixels) != len(self.info.amps):
            raise ValueError("one pixel array per amplifier is required")


@dataclass
class Exposure:
    """An assembled, instrument-corrected image of one detector (output of ISR).

    ``image`` is in electrons with bias, dark and flat removed (sky not subtracted),
    ``variance`` in electrons^2, ``mask`` a :class:`MaskBit` plane. ``wcs`` is an
    ``astropy.wcs.WCS`` (the header one until astrometry replaces it).
    """

    image: np.ndarray
    variance: np.ndarray
    mask: np.ndarray
    info: RawInfo
    wcs: object = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.image.shape != self.variance.shape or self.image.shape != self.mask.shape:
            raise ValueError("image, variance and mask must have the same shape")
        if self.image.dtype != np.float32 or self.variance.dtype != np.float32:
            raise ValueError("image and variance must be float32")
        if self.mask.dtype != np.uint16:
            raise ValueError("mask must be uint16")


@dataclass(frozen=True)
class MasterCalib:
    """A master bias, dark (e-/s) or flat (normalised) of one detector (and band)."""

    kind: str               #: 'bias' | 'dark' | 'flat'
    detector: int
    band: str | None
    image: np.ndarray       #: float32, assembled detector; bias in e-, dark in e-/s, flat unitless
    mask: np.ndarray        #: uint16 MaskBit plane (BAD, HOT)
    inputs: tuple[str, ...]  #: paths of the raws that went in
    #: flats only: relative rms of one pixel of the master (the photon noise of the flats
    #: that were combined) [fraction]; ISR adds ``(noise * image)^2`` to the variance
    noise: float = 0.0


# --- identifiers --------------------------------------------------------------------------

DETECTOR_FACTOR = 1000
"""``ccdVisitId = visit * 1000 + detector`` (detector numbers are < 1000)."""

SOURCE_FACTOR = 100_000
"""``sourceId = ccdVisitId * 100000 + n``, n the 0-based row of the source in its frame."""


def ccd_visit_id(visit, detector):
    """The ``ccdVisitId`` of a (visit, detector): ``visit * 1000 + detector`` (int64)."""
    return np.asarray(visit, dtype=np.int64) * DETECTOR_FACTOR + np.asarray(detector, dtype=np.int64)


def source_id(ccd_visit, index):
    """The ``sourceId`` of the ``index``-th source of a frame: ``ccdVisitId * 100000 + index``."""
    return np.asarray(ccd_visit, dtype=np.int64) * SOURCE_FACTOR + np.asarray(index, dtype=np.int64)
