"""Detection: PSF matched filter, threshold in sigma of the smoothed noise, footprints as
connected components grown by about a PSF width, and deblended peaks.

Smoothing with the PSF (approximated by a Gaussian of the same FWHM) maximises the S/N of
point sources; the smoothed noise is ``rms * sum(k^2)`` for the separable kernel ``k x k``
(normalised to sum 1), so the threshold ``cfg.threshold`` means that many sigma for a
point source at the peak.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..config import DetectionConfig
from ..products import MaskBit
from . import detect_kernels as dk
from .background import gaussian_kernel1d
from .deblend import deblend_peaks

#: pixels set to the background level (0) before filtering
CLEAN_BITS = int(MaskBit.BAD | MaskBit.HOT | MaskBit.NO_DATA)


@dataclass
class Detections:
    """Peaks found in one image (0-based pixel indices) and their footprints."""

    x: np.ndarray            #: int64 peak column
    y: np.ndarray            #: int64 peak row
    peak: np.ndarray         #: smoothed value at the peak [e- per kernel-weighted pixel]
    significance: np.ndarray  #: peak / smoothed noise (sigma)
    core: np.ndarray         #: id of the above-threshold component holding the peak
    footprint: np.ndarray    #: id of the grown footprint holding the peak (0-based)
    npix: np.ndarray         #: pixels of the above-threshold component
    nchild: np.ndarray       #: number of peaks in the same grown footprint
    footprints: np.ndarray   #: int32 label image of the grown footprints (0 = none)
    fwhm: float              #: FWHM [pixels] of the matched filter

    def __len__(self) -> int:
        return int(self.x.size)


def detect_sources(image_bgsub, variance, mask, rms, fwhm: float,
                   cfg: DetectionConfig = DetectionConfig()) -> Detections:
    """Detect sources on a background-subtracted image [e-].

    ``variance`` [e^2] may be None (then ``rms**2``); ``rms`` is the background noise map
    [e-] (e.g. ``Background.rms()``); ``fwhm`` [pixels] sets the matched filter.
    """
    image_bgsub = np.ascontiguousarray(image_bgsub, dtype=np.float32)
    ny, nx = image_bgsub.shape
    if mask is None:
        mask = np.zeros((ny, nx), dtype=np.uint16)
    mask = np.ascontiguousarray(mask, dtype=np.uint16)
    rms = np.ascontiguousarray(rms, dtype=np.float32)
    if variance is None:
        variance = rms * rms
    variance = np.ascontiguousarray(variance, dtype=np.float32)
    k = gaussian_kernel1d(max(fwhm, 0.5) / 2.3548, 3.5)
    knorm = float((k * k).sum())
    clean = dk.clean_image(image_bgsub, mask, CLEAN_BITS)
    sm = dk.convolve_separable(clean, k)
    core = dk.threshold_map(sm, rms, cfg.threshold * knorm)
    labels, n = dk.label8(core)
    npix, _, _, _, _ = dk.label_stats(labels, n, sm)
    keep = npix >= cfg.min_pixels
    keep[0] = False
    if not keep[1:].all():
        core = dk.keep_labels(labels, keep)
        labels, n = dk.label8(core)
        npix, _, _, _, _ = dk.label_stats(labels, n, sm)
    py, px = deblend_peaks(sm, labels, n, variance, rms, knorm, cfg)
    grow = int(math.ceil(cfg.grow * fwhm))
    grown = dk.dilate_disk(core, grow) if grow > 0 else core
    flabels, nf = dk.label8(grown)
    m = cfg.edge_margin
    if m > 0:
        ok = (px >= m) & (px < nx - m) & (py >= m) & (py < ny - m)
        py, px = py[ok], px[ok]
    fp = flabels[py, px].astype(np.int64) - 1
    counts = np.bincount(fp, minlength=max(nf, 1)) if fp.size else np.zeros(max(nf, 1), np.int64)
    pk = sm[py, px].astype(np.float64)
    sig = pk / (knorm * rms[py, px])
    return Detections(x=px.astype(np.int64), y=py.astype(np.int64), peak=pk, significance=sig,
                      core=labels[py, px].astype(np.int64), footprint=fp,
                      npix=npix[labels[py, px]].astype(np.int64), nchild=counts[fp] if fp.size else fp,
                      footprints=flabels, fwhm=float(fwhm))
