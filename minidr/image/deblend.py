"""Deblending: significant peaks of each detection footprint.

A continuous multi-threshold tree (SExtractor's 32-level tree taken to its limit): the
pixels of a footprint are visited from the brightest down in the PSF-smoothed image and
joined by union-find; where two branches meet, the lower one becomes a separate child when
its prominence above the saddle exceeds ``cfg.deblend_nsigma`` sigma of the smoothed noise
and its flux above the saddle exceeds ``cfg.deblend_contrast`` of the footprint's total.
Children of footprints with 2+ peaks are flagged BLENDED; parents never enter the catalogue.
"""

from __future__ import annotations

import numpy as np

from ..config import DetectionConfig
from . import detect_kernels as dk


def deblend_peaks(smoothed, core_labels, n_labels, variance, rms, knorm: float,
                  cfg: DetectionConfig = DetectionConfig()):
    """Peaks kept by the deblender: (y, x) int64 arrays, in decreasing smoothed value.

    ``smoothed`` is the matched-filtered image, ``core_labels`` its above-threshold
    connected components (1..n_labels), ``variance``/``rms`` per-pixel noise [e^2, e-] of
    the unsmoothed image and ``knorm`` the noise gain of the filter (sum of squared kernel
    weights) so that the smoothed noise is ``knorm * sqrt(variance)``.
    """
    flat = np.flatnonzero(core_labels.ravel())
    if flat.size == 0:
        e = np.zeros(0, dtype=np.int64)
        return e, e
    vals = smoothed.ravel()[flat]
    order = flat[np.argsort(-vals, kind="stable")].astype(np.int64)
    _, total, _, _, _ = dk.label_stats(core_labels, n_labels, smoothed)
    peaks = dk.persistence_peaks(smoothed, core_labels, order, total, variance, rms, float(knorm),
                                 float(cfg.deblend_nsigma), float(cfg.deblend_contrast))
    nx = smoothed.shape[1]
    return peaks // nx, peaks % nx
