"""The simulated sky: stars and galaxies with AB magnitudes per band, variable stars, and the
Gaussian-mixture approximations used to render galaxies and PSF wings.

Units: positions in degrees (ICRS), magnitudes AB, half-light radii in arcsec, position
angles in degrees East of North, periods in days.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.optimize import nnls

BANDS = "ugrizy"

STAR_DENSITY = 70_000.0
"""Stars per deg^2 within STAR_MAG_RANGE (r band): ~230 on a 1024^2 detector, ~65 brighter than r=22,
~3 brighter than r=16 (saturated)."""
STAR_MAG_RANGE = (13.0, 25.0)
STAR_SLOPE = 0.17
"""Star counts dN/dm ~ 10^(slope m)."""
GALAXY_DENSITY = 60_000.0
GALAXY_MAG_RANGE = (18.0, 25.5)
GALAXY_SLOPE = 0.33
VARIABLE_FRACTION = 0.05
BRIGHT_DENSITY = 400.0
"""Extra bright stars per deg^2, uniform in 12 < r < 16 (~1.3 on a 1024^2 detector; they saturate)."""


@dataclass
class SkyCatalog:
    """Every simulated object (columns of equal length, index = truthId - 1)."""

    truth_id: np.ndarray      #: int64, from 1
    ra: np.ndarray            #: deg
    dec: np.ndarray           #: deg
    is_star: np.ndarray       #: bool
    mags: dict                #: band -> mean AB magnitude array
    is_variable: np.ndarray   #: bool
    var_type: np.ndarray      #: '' | 'sinusoid' | 'random'
    var_amplitude: np.ndarray  #: mag (semi-amplitude of a sinusoid, rms of random variables)
    var_period: np.ndarray    #: days (NaN for random / non-variables)
    var_phase: np.ndarray     #: radians
    half_light_radius: np.ndarray  #: arcsec along the major axis (NaN for stars)
    sersic_n: np.ndarray      #: 1 (exponential) or 4 (de Vaucouleurs); NaN for stars
    ellipticity: np.ndarray   #: 1 - b/a (0 for stars)
    position_angle: np.ndarray  #: deg East of North (NaN for stars)

    def __len__(self) -> int:
        return len(self.ra)


def _powerlaw_mags(rng, n, lo, hi, slope):
    a, b = 10.0 ** (slope * lo), 10.0 ** (slope * hi)
    return np.log10(a + rng.uniform(size=n) * (b - a)) / slope


def _tan_to_sky(xi, eta, ra0, dec0):
    """Gnomonic de-projection: tangent-plane (xi, eta) in degrees about (ra0, dec0) -> (ra, dec)."""
    xi, eta = np.radians(xi), np.radians(eta)
    a0, d0 = np.radians(ra0), np.radians(dec0)
    den = np.cos(d0) - eta * np.sin(d0)
    ra = a0 + np.arctan2(xi, den)
    dec = np.arctan2(np.sin(d0) + eta * np.cos(d0), np.hypot(xi, den))
    return np.degrees(ra) % 360.0, np.degrees(dec)


def make_catalog(rng: np.random.Generator, ra0: float, dec0: float, half_width: float,
                 half_height: float, bands: str,
                 star_density: float = STAR_DENSITY, galaxy_density: float = GALAXY_DENSITY
                 ) -> SkyCatalog:
    """Objects uniformly spread over a tangent-plane box of half sizes (deg) about (ra0, dec0)."""
    area = 4.0 * half_width * half_height
    n_bright = rng.poisson(BRIGHT_DENSITY * area)
    n_star = rng.poisson(star_density * area) + n_bright
    n_gal = rng.poisson(galaxy_density * area)
    n = n_star + n_gal
    xi = rng.uniform(-half_width, half_width, n)
    eta = rng.uniform(-half_height, half_height, n)
    ra, dec = _tan_to_sky(xi, eta, ra0, dec0)
    is_star = np.zeros(n, bool)
    is_star[:n_star] = True

    r = np.empty(n)
    r[:n_star] = _powerlaw_mags(rng, n_star, *STAR_MAG_RANGE, STAR_SLOPE)
    r[:n_bright] = rng.uniform(12.0, 16.0, n_bright)
    r[n_star:] = _powerlaw_mags(rng, n_gal, *GALAXY_MAG_RANGE, GALAXY_SLOPE)
    gr = np.where(is_star, rng.uniform(0.2, 1.5, n), rng.uniform(0.3, 1.1, n))
    noise = rng.normal(0.0, 1.0, (4, n))
    colours = {  # band - r
        "u": gr + 0.8 + 0.9 * gr + 0.1 * noise[0],
        "g": gr,
        "r": np.zeros(n),
        "i": -(0.45 * gr - 0.05 + 0.03 * noise[1]),
        "z": -(0.45 * gr - 0.05 + 0.03 * noise[1]) - (0.25 * gr + 0.02 * noise[2]),
        "y": -(0.45 * gr - 0.05 + 0.03 * noise[1]) - (0.25 * gr + 0.02 * noise[2])
             - (0.1 * gr + 0.02 * noise[3]),
    }
    mags = {b: r + colours[b] for b in bands}

    is_var = is_star & (rng.uniform(size=n) < VARIABLE_FRACTION)
    sinus = rng.uniform(size=n) < 0.6
    var_type = np.where(is_var, np.where(sinus, "sinusoid", "random"), "")
    amp = np.where(is_var, rng.uniform(0.05, 0.5, n), 0.0)
    period = np.where(is_var & sinus, 10.0 ** rng.uniform(np.log10(0.2), np.log10(30.0), n), np.nan)
    phase = np.where(is_var, rng.uniform(0.0, 2 * np.pi, n), 0.0)

    re = 0.8 * 10.0 ** (-0.1 * (r - 21.0)) * 10.0 ** rng.normal(0.0, 0.2, n)
    re = np.where(is_star, np.nan, np.clip(re, 0.3, 2.0))
    sersic = np.where(is_star, np.nan, np.where(rng.uniform(size=n) < 0.7, 1.0, 4.0))
    ell = np.where(is_star, 0.0, rng.uniform(0.0, 0.6, n))
    pa = np.where(is_star, np.nan, rng.uniform(0.0, 180.0, n))
    return SkyCatalog(np.arange(1, n + 1, dtype=np.int64), ra, dec, is_star, mags, is_var,
                      var_type, amp, period, phase, re, sersic, ell, pa)


def epoch_mags(cat: SkyCatalog, band: str, mjd: float, seed: int, t0: float = 0.0) -> np.ndarray:
    """AB magnitudes of every object in ``band`` at time ``mjd`` (variables vary, in all bands alike).

    Sinusoids: ``m + A sin(2 pi (mjd - t0) / P + phase)``; random variables: ``m + A N(0, 1)``
    drawn from (seed, truthId, mjd) so every detector of a visit sees the same value.
    """
    m = cat.mags[band].copy()
    sin = np.flatnonzero(cat.var_type == "sinusoid")
    m[sin] += cat.var_amplitude[sin] * np.sin(2 * np.pi * (mjd - t0) / cat.var_period[sin]
                                              + cat.var_phase[sin])
    for k in np.flatnonzero(cat.var_type == "random"):
        g = np.random.default_rng(np.random.SeedSequence(
            [seed, 0x5A5A, int(cat.truth_id[k]), int(round(mjd * 1e5))]))
        m[k] += cat.var_amplitude[k] * g.normal()
    return m


# --- Gaussian mixtures --------------------------------------------------------------------

def _fit_mixture(r, profile, sigmas):
    """Non-negative weights of circular 2D Gaussians (variances sigmas^2) fitting ``profile(r)``."""
    var = sigmas ** 2
    basis = np.exp(-0.5 * r[:, None] ** 2 / var[None, :]) / (2 * np.pi * var[None, :])
    wt = np.sqrt(r * np.gradient(r))[:, None]  # weight by area 2 pi r dr
    amp, _ = nnls(basis * wt, profile * wt[:, 0])
    keep = amp > 1e-3 * amp.sum()
    amp, var = amp[keep], var[keep]
    return amp / amp.sum(), var


@lru_cache(maxsize=None)
def sersic_mixture(n: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian mixture of a circular Sersic profile of half-light radius 1.

    Returns (weights summing to 1, variances in units of r_e^2). The profile is truncated
    smoothly beyond 4 r_e (n=1) or 8 r_e (n=4), as SDSS does.
    """
    from scipy.special import gammaincinv
    b = gammaincinv(2 * n, 0.5)
    rmax = 4.0 if n <= 1.5 else 8.0
    r = np.concatenate([np.geomspace(1e-4, 0.1, 200), np.linspace(0.1, rmax + 2, 2000)[1:]])
    prof = np.exp(-b * (r ** (1.0 / n) - 1.0))
    prof *= np.where(r < rmax, 1.0, np.clip(1 - ((r - rmax) / 2.0) ** 2, 0, 1) ** 2)
    prof /= np.sum(prof * 2 * np.pi * r * np.gradient(r))
    # few components keep rendering fast: enclosed flux within 0.5% (n=1) / 1% (n=4) of the profile
    sig = np.geomspace(0.005, 5.0, 8) if n > 1.5 else np.geomspace(0.05, 2.0, 7)
    amp, var = _fit_mixture(r, prof, sig)
    return amp, var


@lru_cache(maxsize=None)
def moffat_mixture(beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian mixture of a circular Moffat profile ``(1 + r^2/alpha^2)^-beta`` with alpha = 1.

    Returns (weights summing to 1, variances in units of alpha^2).
    """
    r = np.concatenate([np.linspace(0, 2, 400), np.linspace(2, 30, 1400)[1:]])
    r[0] = 1e-4
    prof = (beta - 1) / np.pi * (1 + r * r) ** (-beta)
    sig = np.geomspace(0.25, 6.0, 7)   # enclosed flux within 0.4% for 2.5 <= beta <= 4
    return _fit_mixture(r, prof, sig)


def moffat_alpha(fwhm: float, beta: float) -> float:
    """Moffat core width alpha of a profile of the given FWHM (same units)."""
    return fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
