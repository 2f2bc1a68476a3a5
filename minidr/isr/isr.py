"""Instrument signature removal: raw frame -> assembled, calibrated :class:`Exposure`.

``assemble`` does overscan, trim, flip, gain and placement (what the master calibrations are
built from); ``run`` does the same in one fused pass together with bias, dark and flat
removal, variance and masks, then interpolates defects and cosmic rays. No file I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minidr.config import Config, IsrConfig
from minidr.errors import InputError
from minidr.products import Exposure, MaskBit, MasterCalib, RawExposure, Section

from . import kernels as k

_DEFECTS = int(MaskBit.BAD | MaskBit.HOT | MaskBit.NO_DATA)
_CR_SKIP = int(MaskBit.SAT | MaskBit.BAD | MaskBit.HOT | MaskBit.NO_DATA)
_CR_BLOCK = 64


@dataclass
class AssembledImage:
    """An overscan-corrected, trimmed, assembled frame in electrons (no bias/dark/flat).

    ``image`` float32 [e-]; ``mask`` uint16 MaskBit plane (SAT, NO_DATA); ``read_noise``
    float32 per amplifier [e-], in the order of ``detsecs``; ``overscan`` mean overscan level
    per amplifier [ADU].
    """

    image: np.ndarray
    mask: np.ndarray
    read_noise: np.ndarray
    detsecs: tuple[Section, ...]
    overscan: np.ndarray

    def read_noise_map(self) -> np.ndarray:
        """Per-pixel read noise [e-] (float32, shape of ``image``)."""
        out = np.zeros(self.image.shape, dtype=np.float32)
        for rn, sec in zip(self.read_noise, self.detsecs):
            out[sec.slices] = rn
        return out


@dataclass
class _AmpPlan:
    pixels: np.ndarray
    level: np.ndarray
    datasec: Section
    detsec: Section
    gain: float
    rdnoise: float
    saturate: float


def _plan(raw: RawExposure, cfg: IsrConfig) -> list[_AmpPlan]:
    """Check every amplifier's sections and measure its smoothed per-row overscan level."""
    info = raw.info
    ny, nx = info.shape
    plans = []
    for amp, pix in zip(info.amps, raw.amp_pixels):
        where = f"amplifier {amp.name}"
        if pix.ndim != 2:
            raise InputError(f"{where}: pixel array is not 2-d", path=info.path)
        d, b, t = amp.datasec, amp.biassec, amp.detsec
        ay, ax = pix.shape
        for name, sec in (("DATASEC", d), ("BIASSEC", b)):
            if not (0 <= sec.y0 < sec.y1 <= ay and 0 <= sec.x0 < sec.x1 <= ax):
                raise InputError(f"{where}: {name} outside the {ay}x{ax} array", path=info.path,
                                 keyword=name)
        if not (0 <= t.y0 < t.y1 <= ny and 0 <= t.x0 < t.x1 <= nx):
            raise InputError(f"{where}: DETSEC outside the {ny}x{nx} detector", path=info.path,
                             keyword="DETSEC")
        if t.shape != d.shape:
            raise InputError(f"{where}: DETSEC {t.shape} and DATASEC {d.shape} differ in size",
                             path=info.path, keyword="DETSEC")
        if not (amp.gain > 0 and np.isfinite(amp.gain)):
            raise InputError(f"{where}: gain must be > 0, got {amp.gain}", path=info.path, keyword="GAIN")
        pix = np.ascontiguousarray(pix)
        rows = k.overscan_row_medians(pix, b.y0, b.y1, b.x0, b.x1)
        level = k.running_median(rows, int(cfg.overscan_smooth_rows))
        plans.append(_AmpPlan(pix, level, d, t, float(amp.gain), float(amp.rdnoise),
                              float(amp.saturate)))
    return plans


_DUMMY_F = np.zeros((1, 1), dtype=np.float32)
_DUMMY_M = np.zeros((1, 1), dtype=np.uint16)


def _run_amps(plans, shape, use_calibs, bias, dark, flat, masks, exptime, out=None, flat_noise=0.0):
    """The fused kernel over every amplifier; ``masks`` = (bias, dark, flat) mask planes.
    Without calibrations no variance is made (``var`` is None). ``out``: the image array to
    fill (float32, C-contiguous, ``shape``), else a new one."""
    img = np.empty(shape, dtype=np.float32) if out is None else out
    var = np.empty(shape, dtype=np.float32) if use_calibs else None
    mask = np.empty(shape, dtype=np.uint16)  # DETSECs tile the detector: every pixel is written
    row_or = np.zeros(shape[0], dtype=np.int64)
    mb, md, mf = masks
    for p in plans:  # one amplifier after the other (row_or is shared)
        d, t = p.datasec, p.detsec
        k.isr_amp(p.pixels, p.level, d.y0, d.y1, d.x0, d.x1, t.y0, t.x0, bool(t.flip_x),
                  bool(t.flip_y), p.gain, p.rdnoise, float(flat_noise), p.saturate, use_calibs, bias, dark, flat,
                  mb, md, mf, float(exptime), img, _DUMMY_F if var is None else var, mask, row_or)
    return img, var, mask, row_or


def _check_coverage(raw: RawExposure):
    """DETSECs inside the detector, pairwise disjoint, and covering it (by area)."""
    ny, nx = raw.info.shape
    secs = [a.detsec for a in raw.info.amps]
    area = 0
    for i, a in enumerate(secs):
        area += (a.y1 - a.y0) * (a.x1 - a.x0)
        for b in secs[i + 1:]:
            if a.y0 < b.y1 and b.y0 < a.y1 and a.x0 < b.x1 and b.x0 < a.x1:
                raise InputError("amplifier DETSECs overlap", path=raw.info.path, keyword="DETSEC")
    if area != ny * nx:
        raise InputError("amplifier DETSECs do not tile the detector exactly once",
                         path=raw.info.path, keyword="DETSEC")


def assemble(raw: RawExposure, cfg: IsrConfig | Config, out: np.ndarray | None = None) -> AssembledImage:
    """Overscan-subtract (per row, running-median smoothed), trim, flip, gain and place every
    amplifier. Returns the frame in electrons with SAT (grown by ``saturation_grow``) and
    NO_DATA in its mask. ``out``: a float32 C-contiguous array of the detector's shape to
    write the image into (e.g. one plane of a calibration stack), else a new one."""
    cfg = cfg.isr if isinstance(cfg, Config) else cfg
    _check_coverage(raw)
    if out is not None and (out.dtype != np.float32 or out.shape != tuple(raw.info.shape)
                            or not out.flags.c_contiguous):
        raise ValueError(f"out must be a C-contiguous float32 array of shape {tuple(raw.info.shape)}")
    plans = _plan(raw, cfg)
    img, _var, mask, row_or = _run_amps(plans, raw.info.shape, False, _DUMMY_F, _DUMMY_F,
                                        _DUMMY_F, (_DUMMY_M, _DUMMY_M, _DUMMY_M), 0.0, out)
    k.grow_mask_bit(mask, int(MaskBit.SAT), int(cfg.saturation_grow), row_or)
    return AssembledImage(
        image=img,
        mask=mask,
        read_noise=np.array([p.rdnoise for p in plans], dtype=np.float32),
        detsecs=tuple(p.detsec for p in plans),
        overscan=np.array([float(np.mean(p.level)) for p in plans]),
    )


def _check_calib(raw: RawExposure, calib: MasterCalib | None, kind: str):
    if calib is None:
        return None
    info = raw.info
    name = f"master {kind} of detector {calib.detector}"
    if calib.kind != kind:
        raise InputError(f"{name} is a '{calib.kind}', not a '{kind}'", path=info.path)
    if calib.detector != info.detector:
        raise InputError(f"raw is detector {info.detector} but the {name} is not", path=info.path,
                         keyword="DETECTOR")
    if calib.image.shape != tuple(info.shape):
        raise InputError(f"raw detector is {info.shape[0]}x{info.shape[1]} but the {name} is "
                         f"{calib.image.shape[0]}x{calib.image.shape[1]}", path=info.path)
    if kind == "flat" and info.band is not None and calib.band is not None and calib.band != info.band:
        raise InputError(f"raw is band {info.band!r} but the {name} is band {calib.band!r}",
                         path=info.path, keyword="FILTER")
    return calib


def run(raw: RawExposure, bias: MasterCalib, dark: MasterCalib | None, flat: MasterCalib,
        cfg: Config) -> Exposure:
    """Full ISR of one raw frame -> :class:`Exposure` (image e-, variance e-^2, mask).

    image = ((raw - overscan) * gain - bias - dark * exptime) / flat, sky not subtracted;
    variance = (max(pre-flat signal, 0) + read_noise^2) / flat^2 + (flat.noise * image)^2 (the
    master flat's own noise, which matters for bright sources when few flats went in). Mask: SAT (grown), BAD and
    HOT from the calibs, NO_DATA where no finite value exists, CR for cosmic rays (grown by
    one pixel), INTERP where values were interpolated (defects along rows, cosmic rays from a
    local median).
    """
    icfg = cfg.isr if isinstance(cfg, Config) else cfg
    info = raw.info
    _check_calib(raw, bias, "bias")
    _check_calib(raw, dark, "dark")
    _check_calib(raw, flat, "flat")
    _check_coverage(raw)
    plans = _plan(raw, icfg)
    shape = tuple(info.shape)
    b = np.ascontiguousarray(bias.image, dtype=np.float32)
    f = np.ascontiguousarray(flat.image, dtype=np.float32)
    if dark is not None:
        dk = np.ascontiguousarray(dark.image, dtype=np.float32)
        dm = np.ascontiguousarray(dark.mask, dtype=np.uint16)
    else:
        dk = np.zeros(shape, dtype=np.float32)
        dm = np.zeros(shape, dtype=np.uint16)
    masks = (np.ascontiguousarray(bias.mask, dtype=np.uint16), dm,
             np.ascontiguousarray(flat.mask, dtype=np.uint16))
    img, var, mask, row_or = _run_amps(plans, shape, True, b, dk, f, masks, float(info.exptime),
                                       flat_noise=flat.noise)
    k.grow_mask_bit(mask, int(MaskBit.SAT), int(icfg.saturation_grow), row_or)
    if icfg.interpolate_defects:
        k.interpolate_rows(img, var, mask, _DEFECTS, int(MaskBit.SAT), row_or)
    n_cr = 0
    if icfg.cosmic_rays and info.imagetyp == "science":
        n_cr = find_cosmic_rays(img, var, mask, icfg, row_or)

    counts = k.count_bits(mask, row_or)
    npix = np.array([p.datasec.shape[0] * p.datasec.shape[1] for p in plans], dtype=float)
    gains = np.array([p.gain for p in plans])
    rns = np.array([p.rdnoise for p in plans])
    metadata = {
        "exptime": float(info.exptime),
        "read_noise": float(np.sum(npix * rns) / npix.sum()),
        "gain": float(np.sum(npix * gains) / npix.sum()),
        "saturation": float(min((p.saturate - float(np.max(p.level))) * p.gain for p in plans)),
        "overscan_adu": [float(np.mean(p.level)) for p in plans],
        "read_noise_amps": [float(r) for r in rns],
        "gain_amps": [float(g) for g in gains],
        "n_sat": int(counts[MaskBit.SAT.bit_length() - 1]),
        "n_bad": int(counts[MaskBit.BAD.bit_length() - 1]),
        "n_hot": int(counts[MaskBit.HOT.bit_length() - 1]),
        "n_no_data": int(counts[MaskBit.NO_DATA.bit_length() - 1]),
        "n_cr": int(n_cr),
        "calibs": {c.kind: list(c.inputs) for c in (bias, dark, flat) if c is not None},
    }
    return Exposure(image=img, variance=var, mask=mask, info=info, wcs=_header_wcs(info),
                    metadata=metadata)


def _header_wcs(info):
    if not info.wcs_header:
        return None
    from astropy.io import fits
    from astropy.wcs import WCS

    hdr = fits.Header()
    for key, val in info.wcs_header.items():
        hdr[key] = val
    try:
        return WCS(hdr)
    except Exception as exc:  # astropy raises many kinds on a broken header
        raise InputError(f"header WCS cannot be built: {exc}", path=info.path, keyword="CTYPE1") from None


def find_cosmic_rays(image: np.ndarray, variance: np.ndarray, mask: np.ndarray,
                     cfg: IsrConfig | Config, row_or: np.ndarray | None = None) -> int:
    """Find cosmic rays in an ISR-corrected image (e-, variance e-^2), in place.

    Seeds are pixels ``cr_sigma`` above the local sky that are sharper than any star can be
    (see ``kernels.cr_seeds``); up to ``cr_iterations`` passes extend hits into neighbouring
    pixels at ``cr_grow_sigma``, each after replacing the hits found so far by a local median.
    The final set is grown by one pixel, flagged CR | INTERP in ``mask`` and replaced in
    ``image`` and ``variance`` by the median of surrounding unflagged pixels. Saturated, bad,
    hot and no-data pixels are never flagged. Returns the number of CR pixels (after growth).
    ``row_or`` (int64 per row, the OR of each row's mask bits), if given, is kept up to date.
    """
    cfg = cfg.isr if isinstance(cfg, Config) else cfg
    if image.ndim != 2 or image.shape != variance.shape or image.shape != mask.shape:
        raise ValueError("image, variance and mask must be 2-d arrays of one shape")
    sky = _conservative_sky(k.block_medians(image, mask, _CR_SKIP, _CR_BLOCK, 4))
    cr = np.zeros(image.shape, dtype=np.uint8)
    k.cr_seeds(image, variance, mask, sky, _CR_BLOCK, float(cfg.cr_sigma), float(cfg.cr_contrast),
               float(cfg.cr_noise), _CR_SKIP, cr)
    ys, xs = k.flag_coords(cr)
    if ys.size == 0:
        return 0
    # hits are replaced in place as they are found (the replacement only ever reads
    # unflagged pixels, and every flagged pixel is written again at the end)
    all_y, all_x = [ys], [xs]
    new_y, new_x = ys, xs
    for _ in range(int(cfg.cr_iterations)):
        if new_y.size == 0:
            break
        image[new_y, new_x] = k.local_medians(image, cr, mask, _CR_SKIP, sky, _CR_BLOCK, new_y, new_x)
        new_y, new_x = k.cr_extend(image, variance, mask, sky, _CR_BLOCK, cr, new_y, new_x,
                                   float(cfg.cr_grow_sigma), float(cfg.cr_contrast),
                                   float(cfg.cr_noise), _CR_SKIP)
        all_y.append(new_y)
        all_x.append(new_x)
    gy, gx = k.dilate_list(cr, mask, _CR_SKIP, np.concatenate(all_y), np.concatenate(all_x))
    vals = k.local_medians(image, cr, mask, _CR_SKIP, sky, _CR_BLOCK, gy, gx)
    vvar = k.local_medians(variance, cr, mask, _CR_SKIP, np.full_like(sky, np.median(variance[::8, ::8])),
                           _CR_BLOCK, gy, gx)
    image[gy, gx] = vals
    variance[gy, gx] = vvar
    mask[gy, gx] |= np.uint16(MaskBit.CR | MaskBit.INTERP)
    if row_or is not None:
        row_or[np.unique(gy)] |= int(MaskBit.CR | MaskBit.INTERP)
    return int(gy.size)


def _conservative_sky(sky: np.ndarray) -> np.ndarray:
    """Minimum over each cell's 3x3 neighbourhood of cells (NaN cells filled by the global
    median): an underestimated sky only makes the cosmic-ray test stricter."""
    sky = sky.copy()
    bad = ~np.isfinite(sky)
    if bad.all():
        sky[:] = 0.0
    elif bad.any():
        sky[bad] = np.nanmedian(sky)
    pad = np.pad(sky, 1, mode="edge")
    stack = [pad[1 + dy:pad.shape[0] - 1 + dy, 1 + dx:pad.shape[1] - 1 + dx]
             for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    return np.min(stack, axis=0)
