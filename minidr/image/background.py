"""Sky background and noise maps (in the manner of SExtractor / sep ``Background``).

A mesh of ``cfg.mesh_size`` pixel cells; in each cell the clipped mode estimate of the
good pixels (``2.5 median - 1.5 mean``, or the median in crowded cells) and the clipped
standard deviation, computed from one histogram of the cell's pixels (placed by the median
and MAD of a sparse sample; clipping iterated on the histogram); invalid cells filled from
their neighbours; the mesh median-filtered (``cfg.filter_size`` cells); then bicubic
interpolation to every pixel, on the first call of ``back()`` or ``rms()``. With
``cfg.passes = 2`` the sources found above ``cfg.mask_threshold`` sigma in a lightly
smoothed, 2x2-binned first-pass residual image, grown by ``cfg.mask_grow`` pixels, are
taken out of the cells' histograms and the mesh is measured again, its level now the
clipped mean (as LSST's ``MEANCLIP`` background over pixels without ``DETECTED``): photon
noise is skewed, so the mode estimate sits ~0.4 e- below the sky's mean at any sky level,
which PSF photometry would turn into a positive flux bias of faint sources (+0.14 sigma in g
on the sample survey). The numba kernels are in :mod:`minidr.image.background_kernels`."""

from __future__ import annotations

import math

import numpy as np

from ..config import BackgroundConfig
from ..errors import AlgorithmError
from ..products import MaskBit
from . import background_kernels as bk

#: pixels never used for the background
EXCLUDE_BITS = int(MaskBit.SAT | MaskBit.BAD | MaskBit.HOT | MaskBit.NO_DATA | MaskBit.CR | MaskBit.DETECTED)
_MAXITER = 5  # clipping iterations per mesh cell
_MIN_FRAC = 0.3  # a mesh cell needs this fraction of good pixels
_NO_MASK = np.zeros((1, 1), dtype=np.uint16)


def clipped_std_factor(c: float) -> float:
    """Standard deviation of a unit normal truncated at +-c (the bias of a clipped rms).

    In closed form with math.erf (no scipy.stats: importing it costs ~0.9 s of CPU in every
    worker process); equal to the scipy.stats.norm formula to the last bit for c = 2.5...4."""
    p = math.erf(c / math.sqrt(2.0))  # 2 * Phi(c) - 1
    pdf = math.exp(-0.5 * c * c) / math.sqrt(2.0 * math.pi)
    return math.sqrt(1 - 2 * c * pdf / p)


def gaussian_kernel1d(sigma: float, nsig: float = 3.0) -> np.ndarray:
    """Normalised 1-d Gaussian (sum 1) of ``sigma`` pixels, half-width ceil(nsig sigma)."""
    h = max(1, int(math.ceil(nsig * sigma)))
    t = np.arange(-h, h + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _fill_and_filter(values, valid, size):
    from scipy.ndimage import median_filter

    v = values.copy()
    if not valid.any():
        return v
    if not valid.all():
        # fill invalid cells with the mean of valid neighbours, growing outwards
        filled = valid.copy()
        for _ in range(max(v.shape)):
            if filled.all():
                break
            pad_v = np.pad(np.where(filled, v, 0.0), 1)
            pad_n = np.pad(filled.astype(float), 1)
            s = sum(pad_v[1 + dy: pad_v.shape[0] - 1 + dy, 1 + dx: pad_v.shape[1] - 1 + dx]
                    for dy in (-1, 0, 1) for dx in (-1, 0, 1))
            c = sum(pad_n[1 + dy: pad_n.shape[0] - 1 + dy, 1 + dx: pad_n.shape[1] - 1 + dx]
                    for dy in (-1, 0, 1) for dx in (-1, 0, 1))
            new = ~filled & (c > 0)
            v[new] = s[new] / c[new]
            filled |= new
    if size > 1:
        # filter the linearly extended mesh: gradients survive the filter at the edges
        v = median_filter(_extrapolate(v), size=size, mode="nearest")[2:-2, 2:-2]
    return np.ascontiguousarray(v)


def _extrapolate(mesh):
    """Pad the mesh by 2 nodes on each side, continued linearly (odd reflection) so that
    gradients carry on to the image edges (one-cell axes are padded flat)."""
    m = mesh
    for ax in (0, 1):
        if m.shape[ax] >= 2:
            m = np.pad(m, [(2, 2) if a == ax else (0, 0) for a in (0, 1)], mode="reflect", reflect_type="odd") \
                if m.shape[ax] >= 3 else np.pad(m, [(2, 2) if a == ax else (0, 0) for a in (0, 1)], mode="edge")
        else:
            m = np.pad(m, [(2, 2) if a == ax else (0, 0) for a in (0, 1)], mode="edge")
    return np.ascontiguousarray(m)


class Background:
    """Background level and rms maps of an image [e-/pixel].

    ``Background(image, mask=None, cfg=BackgroundConfig())``; ``back()`` and ``rms()``
    return float32 maps, ``global_back`` / ``global_rms`` the medians of the mesh.
    Pixels with SAT, BAD, HOT, NO_DATA, CR or DETECTED mask bits are not used.
    """

    def __init__(self, image, mask=None, cfg: BackgroundConfig = BackgroundConfig()):
        image = np.ascontiguousarray(image, dtype=np.float32)
        if image.ndim != 2:
            raise ValueError("image must be 2-d")
        if mask is None:
            mask, excl = _NO_MASK, 0  # excl 0: the kernels never read the mask
        else:
            mask, excl = np.ascontiguousarray(mask, dtype=np.uint16), EXCLUDE_BITS
            if mask.shape != image.shape:
                raise ValueError("mask and image differ in shape")
        self.cfg = cfg
        self.shape = image.shape
        self.mesh = cfg.mesh_size
        self.nmesh = (max(1, int(round(image.shape[0] / cfg.mesh_size))),
                      max(1, int(round(image.shape[1] / cfg.mesh_size))))
        self._rms_factor = clipped_std_factor(cfg.clip_sigma)
        ny, nx = image.shape
        ncell = self.nmesh[0] * self.nmesh[1]
        hists = np.empty((ncell, bk.NBINS), dtype=np.int32)
        state = np.empty((ncell, 4), dtype=np.float64)
        self._measure(image, bk.mesh_stats(image, mask, excl, self.nmesh[0], self.nmesh[1],
                                           cfg.clip_sigma, _MAXITER, _MIN_FRAC, hists, state, False), mask, excl)
        if cfg.passes >= 2:
            # sources of the first pass, found on the 2x2-binned residual (4x cheaper); the
            # first-pass maps are only needed at the centres of the bins
            my, mx = (ny + 1) // 2, (nx + 1) // 2
            back2, rms2 = self._maps(ny, nx, 2)
            resid = bk.binned_residual(image, mask, int(excl & ~MaskBit.DETECTED), back2,
                                       np.empty((my, mx), dtype=np.float32))
            k = gaussian_kernel1d(max(cfg.mask_smooth / 2.0, 0.5))
            knorm = float((k * k).sum())
            # noise of a 2x2 mean is rms / 2
            det = bk.smooth_threshold(resid, k, rms2, 0.5 * cfg.mask_threshold * knorm,
                                      np.empty((my, mx), dtype=np.bool_))
            g = math.ceil(cfg.mask_grow / 2.0)
            if g > 0:
                det = bk.dilate_disk(det, g)
            # the second pass takes the masked pixels out of the first pass's histograms
            # (passes > 2 change nothing: the sources come from the first pass only)
            self._measure(image, bk.mesh_stats_masked(image, mask, excl, det, self.nmesh[0], self.nmesh[1],
                                                      cfg.clip_sigma, _MAXITER, _MIN_FRAC, hists, state, True),
                          mask, excl)
        self._back = self._rms = None  # full-resolution maps: made on first use (like sep's)

    def _measure(self, image, stats, mask, excl):
        level, rms, valid = stats
        if not valid.any():
            finite = np.isfinite(image)
            raise AlgorithmError(
                f"background: no usable pixels ({finite.sum()} finite of {image.size}, "
                f"{((mask & excl) != 0).sum() if excl else 0} masked)",
                n_finite=int(finite.sum()), n_pixels=int(image.size))
        rms = rms / self._rms_factor
        self.mesh_back = _fill_and_filter(level, valid, self.cfg.filter_size)
        self.mesh_rms = _fill_and_filter(rms, valid, self.cfg.filter_size)
        self.mesh_valid = valid

    def _maps(self, ny, nx, step):
        """(back, rms) float32 maps sampled every ``step`` pixels (2: centres of 2x2 bins)."""
        shape = ((ny + step - 1) // step, (nx + step - 1) // step)
        return bk.interp_mesh_pair(_extrapolate(self.mesh_back), _extrapolate(self.mesh_rms), ny, nx, 2,
                                   step, 1e-30, np.empty(shape, dtype=np.float32),
                                   np.empty(shape, dtype=np.float32))

    @property
    def global_back(self) -> float:
        return float(np.median(self.mesh_back[self.mesh_valid]))

    @property
    def global_rms(self) -> float:
        return float(np.median(self.mesh_rms[self.mesh_valid]))

    def _full(self):
        if self._back is None:
            self._back, self._rms = self._maps(self.shape[0], self.shape[1], 1)
        return self._back, self._rms

    def back(self) -> np.ndarray:
        """Background level map, float32 [e-/pixel] (interpolated on the first call of
        ``back`` or ``rms``, which make both maps)."""
        return self._full()[0]

    def rms(self) -> np.ndarray:
        """Background noise map (1 sigma per pixel), float32 [e-]."""
        return self._full()[1]

    def subfrom(self, image) -> np.ndarray:
        """``image - back()`` as a new float32 array."""
        return (np.asarray(image, dtype=np.float32) - self.back()).astype(np.float32)

    def __repr__(self) -> str:
        return f"Background(shape={self.shape}, mesh={self.mesh}, global_back={self.global_back:.3f}, global_rms={self.global_rms:.3f})"
