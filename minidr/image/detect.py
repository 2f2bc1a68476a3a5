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
from .deblend import deblend_runs

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


def _filter_kernel(fwhm: float):
    """The matched filter's 1-d Gaussian (FWHM ``fwhm`` [pixels]) and ``knorm = sum(k^2)``:
    the smoothed image's noise is ``knorm`` times the pixels' noise."""
    k = gaussian_kernel1d(max(fwhm, 0.5) / 2.3548, 3.5)
    return k, float((k * k).sum())


def _core_peaks(image, mask, rms, variance, fwhm, cfg, noise_variance=False):
    """Matched filter, threshold, above-threshold components of >= ``cfg.min_pixels`` as
    labelled runs, and their deblended peaks. Returns (runs (start, x0, x1, label), n,
    npix per label (0 first), flat index, label and smoothed value of each peak), peaks in
    decreasing smoothed value."""
    ny, nx = image.shape
    k, knorm = _filter_kernel(fwhm)
    start, x0, x1, voff, vals = dk.smooth_runs(image, mask, CLEAN_BITS, k, rms, cfg.threshold * knorm,
                                               variance if noise_variance else None)
    lab, n = dk.label_runs(start, x0, x1)
    npix, _ = dk.run_stats(start, x0, x1, voff, vals, lab, n)
    keep = npix >= cfg.min_pixels
    keep[0] = False
    if not keep[1:].all():
        # the deblending tree is per component: dropping small ones first changes no peak
        start, x0, x1, voff, lab, n = dk.select_runs(start, x0, x1, voff, lab, keep)
        npix = np.concatenate([np.zeros(1, np.int64), npix[keep]])
    flat, plab, pk = deblend_runs((start, x0, x1, voff, vals, lab), n, (ny, nx), variance, rms, knorm, cfg)
    return (start, x0, x1, lab), n, npix, flat, plab, pk


def _inputs(image, mask, rms, variance):
    image = np.ascontiguousarray(image, dtype=np.float32)
    if mask is None:
        mask = np.zeros((1, 1), dtype=np.uint16)  # no mask (see dk.smooth_runs)
    mask = np.ascontiguousarray(mask, dtype=np.uint16)
    rms = np.ascontiguousarray(rms, dtype=np.float32)
    if variance is None:
        variance = rms * rms
    return image, mask, rms, np.ascontiguousarray(variance, dtype=np.float32)


def find_peaks(image, mask, rms, variance, fwhm: float, cfg: DetectionConfig = DetectionConfig(),
               noise_variance: bool = False):
    """The peaks :func:`detect_sources` finds (same filter, threshold, ``min_pixels`` and
    deblending), without footprints or any full-frame array: (y, x, npix) int64 arrays in
    decreasing smoothed value, ``npix`` the pixels of the above-threshold component holding
    the peak. The threshold is in sigma of ``rms`` [e-], or with ``noise_variance`` of
    ``sqrt(max(variance, rms^2))`` per pixel (the variance plane [e^2] includes the sources'
    Poisson noise).
    """
    image, mask, rms, variance = _inputs(image, mask, rms, variance)
    _, _, npix, flat, plab, _ = _core_peaks(image, mask, rms, variance, fwhm, cfg, noise_variance)
    nx = image.shape[1]
    return flat // nx, flat % nx, npix[plab]


def detect_sources(image_bgsub, variance, mask, rms, fwhm: float,
                   cfg: DetectionConfig = DetectionConfig()) -> Detections:
    """Detect sources on a background-subtracted image [e-].

    ``variance`` [e^2] may be None (then ``rms**2``); ``rms`` is the background noise map
    [e-] (e.g. ``Background.rms()``); ``fwhm`` [pixels] sets the matched filter. The only
    full-frame array made is the footprint label image.
    """
    image_bgsub, mask, rms, variance = _inputs(image_bgsub, mask, rms, variance)
    ny, nx = image_bgsub.shape
    _, knorm = _filter_kernel(fwhm)
    (start, x0, x1, lab), n, npix, flat, plab, pk = _core_peaks(image_bgsub, mask, rms, variance, fwhm, cfg)
    py, px = flat // nx, flat % nx
    grow = int(math.ceil(cfg.grow * fwhm))
    if grow > 0:
        gstart, gx0, gx1 = dk.grow_runs(ny, nx, start, x0, x1, grow)
        glab, nf = dk.label_runs(gstart, gx0, gx1)
        flabels = dk.paint_runs(ny, nx, gstart, gx0, gx1, glab)
    else:
        flabels, nf = dk.paint_runs(ny, nx, start, x0, x1, lab), n
    m = cfg.edge_margin
    if m > 0:
        ok = (px >= m) & (px < nx - m) & (py >= m) & (py < ny - m)
        py, px, plab, pk = py[ok], px[ok], plab[ok], pk[ok]
    fp = flabels[py, px].astype(np.int64) - 1
    counts = np.bincount(fp, minlength=max(nf, 1)) if fp.size else np.zeros(max(nf, 1), np.int64)
    pk = pk.astype(np.float64)
    sig = pk / (knorm * rms[py, px])
    return Detections(x=px.astype(np.int64), y=py.astype(np.int64), peak=pk, significance=sig,
                      core=plab.astype(np.int64), footprint=fp,
                      npix=npix[plab].astype(np.int64), nchild=counts[fp] if fp.size else fp,
                      footprints=flabels, fwhm=float(fwhm))
