"""Unit helpers: nJy <-> AB magnitudes, angles, times. Pure functions on numbers and arrays."""

from __future__ import annotations

import numpy as np

AB_ZP_NJY = 31.4
"""AB magnitude of a 1 nJy source: ``mag = -2.5 log10(flux_nJy) + 31.4``."""

ARCSEC_PER_DEG = 3600.0
MAS_PER_DEG = 3.6e6


def njy_to_abmag(flux_njy):
    """AB magnitude of a flux in nJy (NaN for flux <= 0)."""
    f = np.asarray(flux_njy, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f > 0, -2.5 * np.log10(f) + AB_ZP_NJY, np.nan)


def abmag_to_njy(mag):
    """Flux in nJy of an AB magnitude."""
    return 10.0 ** (-0.4 * (np.asarray(mag, dtype=np.float64) - AB_ZP_NJY))


def njy_to_abmag_err(flux_njy, flux_err_njy):
    """1-sigma AB magnitude error of a flux and its error (both nJy)."""
    f = np.asarray(flux_njy, dtype=np.float64)
    e = np.asarray(flux_err_njy, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f > 0, 2.5 / np.log(10.0) * e / f, np.nan)


def inst_to_njy_scale(zero_point: float) -> float:
    """Factor from instrumental flux (e-) to nJy for a zero point ``mag = zp - 2.5 log10(flux)``."""
    return 10.0 ** ((AB_ZP_NJY - zero_point) / 2.5)
