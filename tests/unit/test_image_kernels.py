"""minidr.image kernels against slow numpy references (tests/naive_image.py) and scipy."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from naive_image import moffat_alpha, naive_aperture, naive_moffat, naive_psf_flux  # noqa: E402

from minidr.image import detect_kernels as dk  # noqa: E402
from minidr.image import kernels  # noqa: E402
from minidr.image.measure import FLAG_MAP, psf_flux_at  # noqa: E402
from minidr.image.psf import PsfModel  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(x0=st.floats(-3, 3), y0=st.floats(-3, 3), w=st.floats(0.1, 4), h=st.floats(0.1, 4), r=st.floats(0.2, 5))
def test_circle_rect_overlap_matches_sampling(x0, y0, w, h, r):
    exact = kernels.circle_rect_overlap(x0, x0 + w, y0, y0 + h, r)
    n = 400
    xs = x0 + (np.arange(n) + 0.5) / n * w
    ys = y0 + (np.arange(n) + 0.5) / n * h
    frac = np.mean(xs[None, :] ** 2 + ys[:, None] ** 2 < r * r)
    assert abs(exact - frac * w * h) < 0.01 * w * h + 1e-9
    assert 0 <= exact <= min(w * h, math.pi * r * r) + 1e-9


@settings(max_examples=15, deadline=None)
@given(x=st.floats(8, 30), y=st.floats(8, 20), r=st.floats(0.5, 7.5))
def test_aperture_flux_matches_naive(x, y, r):
    rng = np.random.default_rng(3)
    img = rng.uniform(0, 10, (29, 41)).astype(np.float32)
    var = np.full(img.shape, 4.0, np.float32)
    m = np.zeros(img.shape, np.uint16)
    f, e, a, fl = kernels.aperture_flux_kernel(img, var, m, np.array([x]), np.array([y]), np.array([r]), 0, FLAG_MAP, 2)
    ref = naive_aperture(img, x, y, r, 48)
    assert abs(f[0] - ref) < 2e-3 * max(abs(ref), 1.0) + 0.05
    if fl[0] == 0:
        assert a[0] == pytest.approx(math.pi * r * r, rel=1e-9)
        assert e[0] == pytest.approx(2.0 * math.sqrt(sum_w2(x, y, r)), rel=1e-6)


def sum_w2(x, y, r):
    tot = 0.0
    for yy in range(int(y - r - 2), int(y + r + 3)):
        for xx in range(int(x - r - 2), int(x + r + 3)):
            w = kernels.circle_rect_overlap(xx - x - 0.5, xx - x + 0.5, yy - y - 0.5, yy - y + 0.5, r)
            tot += w * w
    return tot


@pytest.mark.parametrize("fx,fy,e1,e2,beta", [(0.0, 0.0, 0.0, 0.0, 3.0), (0.31, -0.42, 0.05, -0.03, 2.5),
                                              (-0.5, 0.5, -0.1, 0.08, 4.5)])
def test_moffat_stamp_matches_oversampled_integral(fx, fy, e1, e2, beta):
    alpha = moffat_alpha(3.5, beta)
    fast = kernels.moffat_stamp(alpha, beta, e1, e2, fx, fy, 15)
    ref = naive_moffat(alpha, beta, e1, e2, fx, fy, 15, 15)
    assert np.abs(fast - ref).max() < 1e-3 * ref.max()
    assert abs(fast.sum() - ref.sum()) < 2e-4


def test_psf_stamp_is_normalised_and_centred():
    psf = PsfModel((100, 120), 3.0, [math.log(3.0)], [0.02], [0.0])
    s = psf.stamp(40.3, 60.8, 12)
    assert s.shape == (25, 25) and s.dtype == np.float64
    assert s.sum() == pytest.approx(1.0, abs=1e-12)
    yy, xx = np.mgrid[-12:13, -12:13]
    # centroid of the stamp = sub-pixel offset from (round(x), round(y)) = (40, 61)
    assert (s * xx).sum() == pytest.approx(0.3, abs=0.02)
    assert (s * yy).sum() == pytest.approx(-0.2, abs=0.02)
    d = PsfModel.from_dict(psf.to_dict())
    assert np.allclose(d.stamp(40.3, 60.8, 12), s)
    assert psf.fwhm == pytest.approx(2 * 3.0 * math.sqrt(2 ** (1 / 3) - 1))


def test_psf_flux_exact_on_noiseless_star_and_matches_naive():
    rng = np.random.default_rng(0)
    psf = PsfModel((60, 70), 3.0, [math.log(moffat_alpha(3.6, 3.0))], [0.03], [-0.02])
    img = np.zeros((60, 70), np.float32)
    x, y, f = 33.27, 28.71, 12345.0
    r = psf.fit_radius
    a, b, e1, e2 = psf.params_at(x, y)
    st_ = kernels.moffat_stamp(a[0], b[0], e1[0], e2[0], x - 33, y - 29, r)
    img[29 - r: 29 + r + 1, 33 - r: 33 + r + 1] = f * st_
    var = (100.0 + rng.uniform(0, 50, img.shape)).astype(np.float32)
    flux, err, flags = psf_flux_at(img, var, None, psf, x, y)
    assert flux[0] == pytest.approx(f, rel=1e-6)
    assert flags[0] == 0
    nf, ne = naive_psf_flux(img, var, st_, 33, 29)
    assert err[0] == pytest.approx(ne, rel=1e-6)
    # edge and mask flags
    m = np.zeros(img.shape, np.uint16)
    m[29, 33] = 1  # SAT
    _, _, fl2 = psf_flux_at(img, var, m, psf, [x, 1.0], [y, 1.0])
    assert fl2[0] & 1 and fl2[1] & 2



def test_blend_and_neighbour_photometry_recover_overlapping_stars():
    """Two noiseless stars 4 px apart: the simultaneous fit of one footprint and the
    neighbour-subtraction iterations between two footprints (pair overlaps, no rendered
    image) both give the true fluxes; the neighbour-subtracted aperture flux too."""
    from minidr.config import MeasurementConfig
    from minidr.image.measure import _photometry, enclosed_fraction

    psf = PsfModel((60, 70), 3.0, [math.log(moffat_alpha(3.6, 3.0))], [0.03], [-0.02])
    r = 3 * psf.fit_radius
    xs, ys, fs = np.array([30.3, 34.1]), np.array([28.6, 30.2]), np.array([20000.0, 7000.0])
    img = np.zeros((60, 70), np.float32)
    for x, y, f in zip(xs, ys, fs):
        a, b, e1, e2 = psf.params_at(x, y)
        cx, cy = math.floor(x + 0.5), math.floor(y + 0.5)
        img[cy - r: cy + r + 1, cx - r: cx + r + 1] += f * kernels.moffat_stamp(a[0], b[0], e1[0], e2[0],
                                                                                   x - cx, y - cy, r)
    var = np.full(img.shape, 100.0, np.float32)
    m = np.zeros(img.shape, np.uint16)
    own = enclosed_fraction(psf, MeasurementConfig().aperture_radius)
    rap = np.full(2, 2.0 * psf.fwhm)
    single, _, _, _, _, _, _ = _photometry(img, var, m, psf, xs, ys, None, rap, 0, own)
    assert np.all(np.abs(single / fs - 1) > 0.01)  # each alone catches its neighbour's light
    blend, berr, fl, _, _, _, _ = _photometry(img, var, m, psf, xs, ys, np.array([0, 0]), rap, 0, own)
    # (models truncated at the fit stamps' edge: the neighbour's far wing is left, < 0.1%)
    assert blend == pytest.approx(fs, rel=1e-3) and np.all(berr > 0) and np.all(fl == 0)
    iterated, _, _, _, ap, _, _ = _photometry(img, var, m, psf, xs, ys, None, rap, 30, own)
    assert iterated == pytest.approx(fs, rel=1e-3)
    # aperture flux with the neighbour's model removed: the star's own enclosed flux
    assert ap == pytest.approx(fs * own, rel=2e-3)

def test_label8_matches_scipy():
    rng = np.random.default_rng(1)
    b = rng.uniform(size=(97, 131)) > 0.6
    lab, n = dk.label8(b)
    ref, nref = ndimage.label(b, structure=np.ones((3, 3)))
    assert n == nref
    # same partition: a one-to-one map between labels
    pairs = set(zip(lab[b].tolist(), ref[b].tolist()))
    assert len(pairs) == n


@pytest.mark.parametrize("r", [1, 3, 5])
def test_grow_runs_matches_scipy_disk_dilation(r):
    rng = np.random.default_rng(r)
    b = rng.uniform(size=(64, 90)) > 0.995
    yy, xx = np.mgrid[-r: r + 1, -r: r + 1]
    ref = ndimage.binary_dilation(b, structure=(xx * xx + yy * yy <= r * r))
    start, x0, x1 = dk.row_runs(b)
    gs, g0, g1 = dk.grow_runs(b.shape[0], b.shape[1], start, x0, x1, r)
    grown = dk.paint_runs(b.shape[0], b.shape[1], gs, g0, g1, np.ones(g0.size, np.int32)) > 0
    assert np.array_equal(grown, ref)
    # maximal runs: the same as the runs of the grown image
    assert all(np.array_equal(u, v) for u, v in zip((gs, g0, g1), dk.row_runs(grown)))


def test_convolve_separable_matches_scipy():
    rng = np.random.default_rng(2)
    img = rng.normal(size=(50, 77)).astype(np.float32)
    k = np.exp(-0.5 * (np.arange(-5, 6) / 1.7) ** 2)
    k /= k.sum()
    ref = ndimage.convolve(img.astype(float), np.outer(k, k), mode="constant")
    assert np.allclose(dk.convolve_separable(img, k), ref, atol=1e-5)
