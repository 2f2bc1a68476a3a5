"""Exercise 8's new measurement: a concentration index, written as a numba kernel.

``concentration`` = flux within r = 1 FWHM / flux within r = 2 FWHM of each Source's
centroid. A point source has the PSF's value (about 0.7 for a Moffat of beta 3); a galaxy,
whose light is spread over more than the PSF, has less. ``ap1Flux`` is the r = 1 FWHM flux,
published in nJy.
"""

import numpy as np
from numba import njit, prange

from minidr.plugins import Column, source_measurement
from minidr.products import MaskBit

SKIP = int(MaskBit.SAT | MaskBit.BAD | MaskBit.NO_DATA)


@njit(parallel=True, cache=True)
def _two_apertures(image, mask, skip, x, y, r1, r2):
    """Sums of good pixels whose centres lie within r1 and r2 [pixels] of (x, y) [e-]."""
    n = x.shape[0]
    ny, nx = image.shape
    f1 = np.zeros(n)
    f2 = np.zeros(n)
    for i in prange(n):
        x0 = max(0, int(np.floor(x[i] - r2[i])))
        x1 = min(nx - 1, int(np.ceil(x[i] + r2[i])))
        y0 = max(0, int(np.floor(y[i] - r2[i])))
        y1 = min(ny - 1, int(np.ceil(y[i] + r2[i])))
        for yy in range(y0, y1 + 1):
            for xx in range(x0, x1 + 1):
                if mask[yy, xx] & skip:
                    continue
                d2 = (xx - x[i]) ** 2 + (yy - y[i]) ** 2
                if d2 <= r2[i] * r2[i]:
                    f2[i] += image[yy, xx]
                    if d2 <= r1[i] * r1[i]:
                        f1[i] += image[yy, xx]
    return f1, f2


@source_measurement(
    Column("concentration", "float64", "", "flux within r = 1 PSF FWHM over flux within r = 2 PSF FWHM"),
    Column("ap1Flux", "float64", "nJy", "flux within a circle of radius 1 PSF FWHM (pixel centres inside)"),
)
def concentration(image, variance, mask, x, y, fwhm, njy_per_electron):
    f1, f2 = _two_apertures(image, mask, SKIP, x, y, fwhm, 2.0 * fwhm)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(f2 > 0, f1 / f2, np.nan)
    return {"concentration": c, "ap1Flux": f1 * njy_per_electron}
