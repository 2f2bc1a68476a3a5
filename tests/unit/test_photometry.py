"""Zero point and nJy calibration on synthetic matched stars with a planted truth."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidr.calibrate.photometry import BAD_FOR_ZERO_POINT, to_njy, zero_point
from minidr.config import PhotometryConfig
from minidr.errors import AlgorithmError
from minidr.products import SourceFlag
from minidr.units import njy_to_abmag

CFG = PhotometryConfig()


def stars(seed, n=30, zp=30.0, ref_noise=0.005, faint=20.5, outlier_frac=0.0, n_saturated=0, sky_var=2000.0):
    """Matched stars: ref mags 16-`faint`, fluxes with photon + sky noise, ref mags with noise."""
    rng = np.random.default_rng(seed)
    true_mag = rng.uniform(16.0, faint, n)
    flux_true = 10 ** (-0.4 * (true_mag - zp))
    err = np.sqrt(flux_true + sky_var)
    flux = flux_true + rng.normal(0, 1, n) * err
    ref = true_mag + rng.normal(0, ref_noise, n)
    flags = np.zeros(n, dtype=np.int32)
    sat = np.argsort(true_mag)[:n_saturated]
    if n_saturated:  # the brightest stars: flux capped, flagged
        flux[sat] = np.minimum(flux[sat], 0.3 * flux_true[sat])
        flags[sat] |= int(SourceFlag.SATURATED)
    k = round(outlier_frac * n)
    if k:  # variables, blends, wrong matches: 0.3-2 mag off (never the saturated ones)
        bad = rng.choice(np.setdiff1d(np.arange(n), sat), k, replace=False)
        ref[bad] += rng.choice([-1, 1], k) * rng.uniform(0.3, 2.0, k)
    return flux, err, ref, flags


@pytest.mark.parametrize("seed", range(10))
def test_recovers_truth_with_20_stars_and_outliers(seed):
    flux, err, ref, flags = stars(seed, n=26, outlier_frac=0.1, n_saturated=2)
    res = zero_point(flux, err, ref, CFG, flags=flags)
    assert abs(res.zero_point - 30.0) < 0.005
    assert 20 <= res.n_stars <= 26 - 2 - 3  # saturated dropped, outliers clipped
    assert 0 < res.zero_point_err < 0.01


def test_error_is_honest_over_many_trials():
    pulls = []
    for seed in range(200):
        flux, err, ref, _ = stars(1000 + seed, n=25, ref_noise=0.01)  # = cfg.error_floor
        res = zero_point(flux, err, ref, CFG)
        pulls.append((res.zero_point - 30.0) / res.zero_point_err)
    pulls = np.array(pulls)
    assert abs(np.mean(pulls)) < 0.3
    assert 0.7 < np.std(pulls) < 1.4


def test_saturated_unflagged_are_clipped_flagged_are_dropped():
    flux, err, ref, flags = stars(3, n=40, n_saturated=5)
    res = zero_point(flux, err, ref, CFG, flags=flags)
    assert abs(res.zero_point - 30.0) < 0.005 and res.n_stars <= 35
    res2 = zero_point(flux, err, ref, CFG)  # no flags: saturated stars are 1.3 mag off, clipped
    assert abs(res2.zero_point - 30.0) < 0.005


def test_low_snr_and_bad_values_are_ignored():
    flux, err, ref, _flags = stars(4, n=30)
    flux = np.concatenate([flux, [np.nan, -5.0, 100.0, 1e5]])
    err = np.concatenate([err, [1.0, 1.0, 50.0, 0.0]])
    ref = np.concatenate([ref, [18.0, 18.0, 10.0, 20.0]])
    res = zero_point(flux, err, ref, CFG)
    assert abs(res.zero_point - 30.0) < 0.005 and res.n_stars <= 30


def test_too_few_stars():
    flux, err, ref, flags = stars(5, n=3, n_saturated=1)
    with pytest.raises(AlgorithmError, match="too few stars") as ei:
        zero_point(flux, err, ref, CFG, flags=flags)
    assert ei.value.metadata["n_stars"] == 2
    with pytest.raises(AlgorithmError):
        zero_point([], [], [], CFG)


@settings(max_examples=50, deadline=None)
@given(zp=st.floats(20.0, 35.0), flux=st.floats(1.0, 1e8))
def test_to_njy_round_trip(zp, flux):
    mag = zp - 2.5 * np.log10(flux)
    njy = to_njy(np.array([flux]), zp)
    assert abs(njy_to_abmag(njy)[0] - mag) < 1e-9
    assert abs(njy[0] - flux * 10 ** ((31.4 - zp) / 2.5)) <= 1e-12 * njy[0]


def test_bad_flags_constant_covers_saturation():
    assert BAD_FOR_ZERO_POINT & SourceFlag.SATURATED
    assert not BAD_FOR_ZERO_POINT & SourceFlag.BLENDED
