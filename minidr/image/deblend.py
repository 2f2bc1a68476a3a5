"""Deblending: significant peaks of each detection footprint.

A continuous multi-threshold tree (SExtractor's 32-level tree taken to its limit): the
pixels of a footprint are visited from the brightest down in the PSF-smoothed image and
joined by union-find; where two branches meet, the lower one becomes a separate child when
its prominence above the saddle exceeds ``cfg.deblend_nsigma`` sigma of the smoothed noise
and its flux above the saddle exceeds ``cfg.deblend_contrast`` of the footprint's total.
Children of footprints with 2+ peaks are flagged BLENDED; parents never enter the catalogue.

Each footprint is its own tree (:func:`detect_kernels.persistence_runs`, one footprint per
thread, on the footprint's runs and bounding box): no full-frame work besides finding the
runs, and no global sort.
"""

from __future__ import annotations

import numpy as np

from ..config import DetectionConfig
from . import detect_kernels as dk


def deblend_runs(runs, n_labels, shape, variance, rms, knorm: float,
                 cfg: DetectionConfig = DetectionConfig()):
    """Peaks kept by the deblender from labelled runs with their smoothed values,
    ``(start, x0, x1, voff, vals, label)`` (see :func:`detect_kernels.smooth_runs`; labels
    1..n_labels, each an 8-connected component) of an image of ``shape``: (flat index
    int64, label int32, smoothed value float32) arrays in decreasing smoothed value, ties
    in raster order."""
    start, x0, x1, voff, vals, lab = runs
    flat, plab, pval = dk.persistence_runs(vals, voff, start, x0, x1, lab, int(n_labels), shape[0], shape[1],
                                           variance, rms, float(knorm), float(cfg.deblend_nsigma),
                                           float(cfg.deblend_contrast))
    o = np.lexsort((flat, -pval))
    return flat[o], plab[o], pval[o]


def deblend_peaks(smoothed, core_labels, n_labels, variance, rms, knorm: float,
                  cfg: DetectionConfig = DetectionConfig()):
    """Peaks kept by the deblender: (y, x) int64 arrays, in decreasing smoothed value.

    ``smoothed`` is the matched-filtered image, ``core_labels`` its above-threshold
    connected components (1..n_labels, as :func:`detect_kernels.label8` gives), ``variance``/``rms``
    per-pixel noise [e^2, e-] of the unsmoothed image and ``knorm`` the noise gain of the
    filter (sum of squared kernel weights) so that the smoothed noise is ``knorm * sqrt(variance)``.
    """
    start, x0, x1, lab = dk.label_row_runs(np.ascontiguousarray(core_labels, dtype=np.int32))
    voff, vals = dk.run_values(np.ascontiguousarray(smoothed, dtype=np.float32), start, x0, x1)
    flat, _, _ = deblend_runs((start, x0, x1, voff, vals, lab), n_labels, smoothed.shape, variance, rms, knorm, cfg)
    nx = smoothed.shape[1]
    return flat // nx, flat % nx
