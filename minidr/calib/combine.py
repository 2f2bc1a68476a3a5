"""Master bias, dark and flat of one detector (and band) from lists of raw frames.

Each raw is assembled by :func:`minidr.isr.assemble` (overscan per row, trim, gain: e-)
straight into its plane of a preallocated ``(n, ny, nx)`` float32 stack, corrected there in
place (bias, dark, scaling), then the stack is combined with a per-pixel sigma-clipped mean
(numba). No file access.
"""

from __future__ import annotations

import numpy as np

from minidr.config import Config
from minidr.errors import InputError
from minidr.isr import assemble
from minidr.products import MaskBit, MasterCalib, RawExposure

from . import kernels as k

_NO_DATA = np.uint16(MaskBit.NO_DATA)
_HOT = np.uint16(MaskBit.HOT)
_BAD = np.uint16(MaskBit.BAD)
_SUBSAMPLE = 4  # every 4th pixel along each axis is plenty for a frame's clipped median


def _check(raws: list[RawExposure], kind: str, need_band: bool = False):
    if not raws:
        raise InputError(f"no {kind} frames to combine")
    dets = sorted({r.info.detector for r in raws})
    if len(dets) > 1:
        raise InputError(f"{kind} frames of mixed detectors {dets}: "
                         + ", ".join(f"{r.info.path} (detector {r.info.detector})" for r in raws))
    shapes = sorted({tuple(r.info.shape) for r in raws})
    if len(shapes) > 1:
        raise InputError(f"{kind} frames of mixed shapes {shapes}: "
                         + ", ".join(f"{r.info.path} {tuple(r.info.shape)}" for r in raws))
    if need_band:
        bands = sorted({str(r.info.band) for r in raws})
        if len(bands) > 1 or raws[0].info.band is None:
            raise InputError(f"{kind} frames must share one band, got {bands}: "
                             + ", ".join(f"{r.info.path} ({r.info.band})" for r in raws))
    bad = [r.info.path for r in raws if r.info.imagetyp != kind]
    if bad:
        raise InputError(f"not {kind} frames: {', '.join(bad)}")
    return dets[0]


def _check_master(m: MasterCalib | None, kind: str, detector: int, shape) -> None:
    if m is None:
        return
    if m.kind != kind:
        raise InputError(f"expected a master {kind}, got a master {m.kind} ({', '.join(m.inputs[:1])})")
    if m.detector != detector or m.image.shape != tuple(shape):
        raise InputError(f"master {kind} is detector {m.detector} {m.image.shape}, frames are "
                         f"detector {detector} {tuple(shape)}")


def noise_floor(frames: list[np.ndarray]) -> float:
    """Typical noise of one frame's pixel: 1.4826 MAD / sqrt(2) of the difference of two
    frames (structure common to the frames cancels), median over up to 3 pairs, on every
    4th pixel. 0 for a single frame."""
    est = []
    for a, b in zip(frames[:3], frames[1:4]):
        d = (a[::_SUBSAMPLE, ::_SUBSAMPLE] - b[::_SUBSAMPLE, ::_SUBSAMPLE]).astype(np.float64).ravel()
        d = d[np.isfinite(d)]
        if d.size:
            est.append(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0))
    return float(np.median(est)) if est else 0.0


def _assembled_stack(raws: list[RawExposure], cfg: Config) -> tuple[np.ndarray, list[np.ndarray]]:
    """Every raw assembled [e-] into one plane of a new float32 ``(n, ny, nx)`` stack;
    returns the stack and the assembled masks."""
    stack = np.empty((len(raws), *raws[0].info.shape), dtype=np.float32)
    masks = [assemble(r, cfg, out=stack[i]).mask for i, r in enumerate(raws)]
    return stack, masks


def _stack(stack: np.ndarray, cfg: Config, floor: float | None = None) -> np.ndarray:
    """Per-pixel sigma-clipped mean of a float32 ``(n, ny, nx)`` stack (clipping scale at
    least the frame noise ``floor``, by default :func:`noise_floor` of the stack)."""
    if floor is None:
        floor = noise_floor(list(stack))
    mean, _n = k.clipped_mean_stack(stack, float(cfg.calibs.clip_sigma), int(cfg.calibs.clip_iterations), floor)
    return mean


def _sat_mask(masks: list[np.ndarray]) -> np.ndarray:
    """Pixels saturated in most input frames become BAD in the master (no use calibrating them)."""
    shift = np.uint16(int(MaskBit.SAT).bit_length() - 1)
    sat = np.zeros(masks[0].shape, dtype=np.uint16)
    for m in masks:  # the number of frames saturated at each pixel, without a 3-d stack
        sat += (m >> shift) & np.uint16(1)
    out = np.zeros(masks[0].shape, dtype=np.uint16)
    out[sat * 2 > len(masks)] = _BAD
    return out


def master_bias(raws: list[RawExposure], cfg: Config) -> MasterCalib:
    """Sigma-clipped mean of overscan-corrected bias frames [e-]."""
    det = _check(raws, "bias")
    stack, masks = _assembled_stack(raws, cfg)
    image = _stack(stack, cfg)
    mask = _sat_mask(masks)
    mask[~np.isfinite(image)] |= _NO_DATA
    image = np.nan_to_num(image, nan=0.0).astype(np.float32)
    return MasterCalib("bias", det, None, image, mask, tuple(r.info.path for r in raws))


def master_dark(raws: list[RawExposure], bias: MasterCalib, cfg: Config) -> MasterCalib:
    """Sigma-clipped mean of bias-subtracted darks, each divided by its EXPTIME [e-/s].

    HOT: dark current more than ``calibs.hot_dark_sigma`` robust sigma above the median.
    """
    det = _check(raws, "dark")
    _check_master(bias, "bias", det, raws[0].info.shape)
    bad_t = [r.info.path for r in raws if not r.info.exptime > 0]
    if bad_t:
        raise InputError(f"dark frames need EXPTIME > 0: {', '.join(bad_t)}")
    stack, masks = _assembled_stack(raws, cfg)
    for plane, r in zip(stack, raws):
        plane -= bias.image
        plane /= np.float32(r.info.exptime)
    image = _stack(stack, cfg)
    mask = _sat_mask(masks) | bias.mask
    finite = np.isfinite(image)
    mask[~finite] |= _NO_DATA
    image = np.nan_to_num(image, nan=0.0).astype(np.float32)
    sample = image[::_SUBSAMPLE, ::_SUBSAMPLE][finite[::_SUBSAMPLE, ::_SUBSAMPLE]]
    _mean, med, std = k.clipped_stats(sample, float(cfg.calibs.clip_sigma), int(cfg.calibs.clip_iterations))
    if np.isfinite(med) and std > 0:
        mask[image > med + cfg.calibs.hot_dark_sigma * std] |= _HOT
    return MasterCalib("dark", det, None, image, mask, tuple(r.info.path for r in raws))


def master_flat(raws: list[RawExposure], bias: MasterCalib, dark: MasterCalib | None,
                cfg: Config) -> MasterCalib:
    """Sigma-clipped mean of bias- and dark-subtracted flats of one band, each first scaled
    by its own clipped median, the result normalised to a clipped median of 1 (unitless).

    BAD: response outside ``[calibs.bad_flat_low, calibs.bad_flat_high]``. ``noise`` is the
    master's relative rms per pixel (see :class:`~minidr.products.MasterCalib`).
    """
    det = _check(raws, "flat", need_band=True)
    shape = raws[0].info.shape
    _check_master(bias, "bias", det, shape)
    _check_master(dark, "dark", det, shape)
    c = cfg.calibs
    stack, masks = _assembled_stack(raws, cfg)
    levels = []
    for img, r in zip(stack, raws):
        img -= bias.image
        if dark is not None:
            img -= dark.image * np.float32(r.info.exptime)
        sub = img[::_SUBSAMPLE, ::_SUBSAMPLE]
        _m, med, _s = k.clipped_stats(sub, float(c.clip_sigma), int(c.clip_iterations))
        if not (np.isfinite(med) and med > 0):
            raise InputError(f"flat frame has no positive signal (median {med:.3g} e-)", path=r.info.path)
        img /= np.float32(med)
        levels.append(float(med))
    # the master's own noise per pixel: one normalised frame's (from frame differences, so
    # the response pattern common to all cancels; photon noise of the level for a single
    # frame) over sqrt(n) for the mean of n
    floor = noise_floor(list(stack))
    one = floor if len(raws) > 1 else 1.0 / np.sqrt(max(levels[0], 1.0))
    image = _stack(stack, cfg, floor)
    finite = np.isfinite(image)
    sample = image[::_SUBSAMPLE, ::_SUBSAMPLE][finite[::_SUBSAMPLE, ::_SUBSAMPLE]]
    _m, med, _s = k.clipped_stats(sample, float(c.clip_sigma), int(c.clip_iterations))
    image = (image / np.float32(med)).astype(np.float32)
    mask = _sat_mask(masks) | bias.mask
    if dark is not None:
        mask |= dark.mask
    mask[~finite] |= _NO_DATA
    with np.errstate(invalid="ignore"):
        mask[~((image >= c.bad_flat_low) & (image <= c.bad_flat_high))] |= _BAD
    image = np.nan_to_num(image, nan=1.0).astype(np.float32)
    # a flat of zero or below cannot be divided by: the ISR makes those pixels NO_DATA
    noise = one / np.sqrt(len(raws)) / float(med)
    return MasterCalib("flat", det, raws[0].info.band, image, mask, tuple(r.info.path for r in raws),
                       noise=float(noise))
