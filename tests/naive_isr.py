"""Slow, plain-numpy copies of the ISR and calib kernels (tests compare the kernels to these),
plus a builder of synthetic raw frames with planted truth."""

from __future__ import annotations

import numpy as np

from minidr.products import AmpInfo, MaskBit, RawExposure, RawInfo, Section

# --- builders -----------------------------------------------------------------------------


def make_raw(truth_e, *, rng, imagetyp="science", exptime=30.0, band="r", detector=1,
             path="raw.fits", gains=(1.5, 1.7, 1.3, 2.0), rdnoise=(5.0, 6.0, 4.5, 5.5),
             bias_adu=(1000.0, 1100.0, 950.0, 1050.0), drift=None, overscan=32, prescan=4,
             saturate=60000.0, flips=((False, False), (True, False), (False, True), (True, True)),
             poisson=True, wcs_header=None, visit=1):
    """A 2x2-amplifier RawExposure whose assembled electrons are ``truth_e`` (plus noise).

    ``drift(r)`` adds a bias in ADU as a function of the raw row index r (read-out order).
    Each amplifier array is ``[prescan | data | overscan]`` columns in read-out order.
    """
    ny, nx = truth_e.shape
    hy, hx = ny // 2, nx // 2
    blocks = [(0, hy, 0, hx), (0, hy, hx, nx), (hy, ny, 0, hx), (hy, ny, hx, nx)]
    amps, pixels = [], []
    truth_e = np.asarray(truth_e, dtype=float)
    if poisson:  # Poisson noise on the positive part; a negative pedestal stays as it is
        signal = rng.poisson(np.clip(truth_e, 0, None)).astype(float) + np.minimum(truth_e, 0)
    else:
        signal = truth_e.copy()
    for i, (y0, y1, x0, x1) in enumerate(blocks):
        fx, fy = flips[i]
        g, rn, b = gains[i], rdnoise[i], bias_adu[i]
        block = signal[y0:y1, x0:x1]
        if fx:
            block = block[:, ::-1]
        if fy:
            block = block[::-1, :]
        by, bx = block.shape
        arr = np.empty((by, prescan + bx + overscan))
        arr[:, prescan:prescan + bx] = block / g
        arr[:, :prescan] = 0.0
        arr[:, prescan + bx:] = 0.0
        level = np.full(by, b)
        if drift is not None:
            level = level + drift(np.arange(by))
        arr += level[:, None]
        arr += rng.normal(0.0, rn / g, arr.shape)
        arr = np.clip(np.round(arr), 0, saturate).astype(np.int32)
        amps.append(AmpInfo(
            name=f"A{i}", hdu=i + 1,
            datasec=Section(0, by, prescan, prescan + bx),
            biassec=Section(0, by, prescan + bx, prescan + bx + overscan),
            detsec=Section(y0, y1, x0, x1, flip_x=fx, flip_y=fy),
            gain=g, rdnoise=rn, saturate=saturate))
        pixels.append(arr)
    info = RawInfo(path=path, imagetyp=imagetyp, exptime=exptime, mjd=60000.0,
                   band=band if imagetyp in ("science", "flat") else None, visit=visit,
                   detector=detector, instrument="TESTCAM", ra=150.0, dec=2.0, shape=(ny, nx),
                   amps=tuple(amps), wcs_header=wcs_header)
    return RawExposure(info, pixels)


def gaussian_star(shape, y, x, flux, fwhm):
    """Pixel-centre-sampled circular Gaussian of total ``flux`` [e-] at (y, x)."""
    s = fwhm / 2.3548
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return flux / (2 * np.pi * s * s) * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * s * s))


# --- naive copies of the kernels ----------------------------------------------------------


def naive_overscan_level(amp, biassec, window):
    rows = np.median(amp[biassec.y0:biassec.y1, biassec.x0:biassec.x1].astype(float), axis=1)
    full = np.empty(amp.shape[0])
    full[:biassec.y0] = rows[0]
    full[biassec.y0:biassec.y1] = rows
    full[biassec.y1:] = rows[-1]
    half = window // 2
    return np.array([np.median(full[max(0, i - half):i + half + 1]) for i in range(len(full))])


def naive_isr(raw: RawExposure, window, bias=None, dark=None, flat=None, calib_mask=None,
              exptime=0.0):
    """numpy, several passes: overscan, trim+flip+place, gain, bias, dark, flat, variance, SAT."""
    ny, nx = raw.info.shape
    img = np.zeros((ny, nx))
    rn2 = np.zeros((ny, nx))
    sat = np.zeros((ny, nx), dtype=bool)
    for amp, pix in zip(raw.info.amps, raw.amp_pixels):
        level = naive_overscan_level(pix, amp.biassec, window)
        d, t = amp.datasec, amp.detsec
        block = (pix.astype(float) - level[:, None])[d.slices]
        s = pix[d.slices] >= amp.saturate
        if t.flip_x:
            block, s = block[:, ::-1], s[:, ::-1]
        if t.flip_y:
            block, s = block[::-1, :], s[::-1, :]
        img[t.slices] = block * amp.gain
        rn2[t.slices] = amp.rdnoise ** 2
        sat[t.slices] = s
    mask = np.where(sat, MaskBit.SAT, 0).astype(np.uint16)
    if bias is not None:
        img = img - bias - dark * exptime
        var = (np.clip(img, 0, None) + rn2) / flat ** 2
        img = img / flat
        mask |= calib_mask
    else:
        var = np.clip(img, 0, None) + rn2
    return img.astype(np.float32), var.astype(np.float32), mask


def naive_clipped_mean(stack, clip, iterations, floor=0.0):
    """Same rule as calib.kernels: median/MAD first pass, then mean/std of the kept values,
    the clipping scale never below ``floor``."""
    n, ny, nx = stack.shape
    out = np.empty((ny, nx), dtype=np.float32)
    for y in range(ny):
        for x in range(nx):
            v = stack[:, y, x].astype(float)
            v = v[np.isfinite(v)]
            if len(v) < 3:
                out[y, x] = v.mean() if len(v) else np.nan
                continue
            keep = np.ones(len(v), bool)
            c = np.median(v)
            s = max(1.4826 * np.median(np.abs(v - c)), floor)
            if s <= 0:
                s = v.std()
            for it in range(max(iterations, 1)):
                new = keep & (np.abs(v - c) <= clip * s) if s > 0 else keep
                changed = (new != keep).any()
                keep = new
                c = v[keep].mean()
                s = max(v[keep].std(ddof=1), floor) if keep.sum() > 1 else floor
                if it > 0 and not changed:
                    break
            out[y, x] = c
    return out


def naive_grow(mask, bit, radius):
    ny, nx = mask.shape
    out = mask.copy()
    ys, xs = np.nonzero(mask & bit)
    for y, x in zip(ys, xs):
        out[max(0, y - radius):y + radius + 1, max(0, x - radius):x + radius + 1] |= bit
    return out


def naive_interpolate_rows(image, variance, mask, badbits, keepbits):
    img, var, m = image.copy(), variance.copy(), mask.copy()
    ny, nx = img.shape
    for y in range(ny):
        bad = ((m[y] & badbits) != 0) & ((m[y] & keepbits) == 0)
        good = np.nonzero(~bad)[0]
        if len(good) == 0:
            continue
        xs = np.nonzero(bad)[0]
        img[y, xs] = np.interp(xs, good, image[y, good])
        var[y, xs] = np.interp(xs, good, variance[y, good])
        m[y, xs] |= np.uint16(MaskBit.INTERP)
    return img, var, m


def naive_cr_seeds(image, variance, mask, sky, nsigma, contrast, noise_k, skipbits):
    """Vectorised first cosmic-ray pass (``sky`` a full-size array)."""
    ny, nx = image.shape
    i = image - sky
    seeds = np.zeros((ny, nx), bool)
    c = (slice(1, ny - 1), slice(1, nx - 1))
    i0, v0 = i[c], variance[c]
    ok = (i0 > 0) & (v0 > 0) & (i0 ** 2 >= nsigma ** 2 * v0) & ((mask[c] & skipbits) == 0)
    lhs = i0 - noise_k * np.sqrt(np.clip(v0, 0, None))
    hit = np.zeros_like(ok)
    for dy, dx, fac in ((0, 1, contrast), (1, 0, contrast), (1, 1, contrast ** 2), (1, -1, contrast ** 2)):
        a = (slice(1 + dy, ny - 1 + dy), slice(1 + dx, nx - 1 + dx))
        b = (slice(1 - dy, ny - 1 - dy), slice(1 - dx, nx - 1 - dx))
        usable = ((mask[a] & skipbits) == 0) & ((mask[b] & skipbits) == 0)
        m = 0.5 * (i[a] + i[b])
        sm = 0.5 * np.sqrt(np.clip(variance[a], 0, None) + np.clip(variance[b], 0, None))
        hit |= usable & (lhs > fac * (m + noise_k * sm))
    seeds[c] = ok & hit
    return seeds
