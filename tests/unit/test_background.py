"""Background kernels (histogram mesh statistics, first-pass mask, interpolation) and the
Background class on images with known sky."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from minidr.config import BackgroundConfig
from minidr.errors import AlgorithmError
from minidr.image import background_kernels as bk
from minidr.image.background import Background, clipped_std_factor, gaussian_kernel1d
from minidr.products import MaskBit

NO_MASK = np.zeros((1, 1), np.uint16)


def _stats(img, mask=NO_MASK, excl=0, nmy=4, nmx=3, mean_level=False):
    hists = np.empty((nmy * nmx, bk.NBINS), np.int32)
    state = np.empty((nmy * nmx, 4))
    out = bk.mesh_stats(img, mask, excl, nmy, nmx, 3.0, 5, 0.3, hists, state, mean_level)
    return out, hists, state


def test_mesh_stats_gaussian_noise():
    rng = np.random.default_rng(4)
    img = rng.normal(100.0, 5.0, (256, 192)).astype(np.float32)
    (lev, rms, ok), _, _ = _stats(img)
    assert ok.all()
    assert np.abs(lev - 100).max() < 0.6
    assert np.abs(rms / clipped_std_factor(3.0) - 5).max() < 0.25


def test_background_is_the_mean_of_a_skewed_photon_noise_sky():
    """Photon noise is skewed (third moment = mean): the mode estimate of the first pass
    sits ~2.5 sky / (6 (sky + rn^2)) ~ 0.4 e- below the sky's mean; the level of the
    second pass (clipped mean) is the mean that PSF photometry must subtract."""
    rng = np.random.default_rng(11)
    sky = 350.0
    img = (rng.poisson(sky, (512, 512)) + rng.normal(0.0, 6.0, (512, 512))).astype(np.float32)
    (mode, _, _), _, _ = _stats(img)
    (mean, _, _), _, _ = _stats(img, mean_level=True)
    assert -0.7 < np.mean(mode) - sky < -0.25
    assert abs(np.mean(mean) - sky) < 0.25
    back = Background(img).back()
    assert abs(float(back.mean()) - sky) < 0.25


def test_mesh_stats_ignores_bright_outliers_and_masked_pixels():
    rng = np.random.default_rng(5)
    img = rng.normal(1000.0, 10.0, (128, 128)).astype(np.float32)
    ref, _, _ = _stats(img.copy(), nmy=2, nmx=2)
    # 3% of the pixels 1e5 above the sky, a few NaN and some masked garbage
    idx = rng.choice(img.size, img.size * 3 // 100, replace=False)
    img.flat[idx] += 1e5
    img[5, 5] = np.nan
    mask = np.zeros(img.shape, np.uint16)
    mask[60:70, :] = MaskBit.BAD
    img[60:70, :] = -1e6
    (lev, rms, ok), _, _ = _stats(img, mask, int(MaskBit.BAD), nmy=2, nmx=2)
    assert ok.all()
    # clipping at 3 sigma keeps the 1e5 outliers out: level within 0.5 sigma of the clean one
    assert np.abs(lev - ref[0]).max() < 5.0
    assert np.abs(rms - ref[1]).max() < 1.0


def test_masked_pass_matches_a_fresh_measurement():
    """Taking the flagged pixels out of the first pass's histograms gives the statistics of
    a measurement with those pixels masked from the start."""
    rng = np.random.default_rng(6)
    img = rng.normal(500.0, 8.0, (200, 260)).astype(np.float32)
    det = np.zeros((100, 130), bool)
    det[10:30, 20:50] = True
    det[60:64, 100:130] = True
    img[20:60, 40:100] += 200.0  # a "source", mostly under det
    (_l1, _r1, _o1), hists, state = _stats(img, nmy=3, nmx=4)
    lev, rms, ok = bk.mesh_stats_masked(img, NO_MASK, 0, det, 3, 4, 3.0, 5, 0.3, hists, state, True)
    full_mask = np.repeat(np.repeat(det, 2, 0), 2, 1).astype(np.uint16) * np.uint16(MaskBit.DETECTED)
    (lev2, rms2, ok2), _, _ = _stats(img, full_mask, int(MaskBit.DETECTED), nmy=3, nmx=4, mean_level=True)
    assert np.array_equal(ok, ok2)
    assert np.abs(lev - lev2).max() < 0.05 * 8
    assert np.abs(rms - rms2).max() < 0.05 * 8


def test_constant_and_empty_cells():
    img = np.full((64, 64), 7.25, np.float32)
    mask = np.zeros(img.shape, np.uint16)
    mask[:32, :] = MaskBit.NO_DATA
    (lev, rms, ok), _, _ = _stats(img, mask, int(MaskBit.NO_DATA), nmy=2, nmx=1)
    assert list(ok[:, 0]) == [False, True]
    assert lev[1, 0] == 7.25 and rms[1, 0] == 0.0


def test_interp_reproduces_a_plane_at_both_steps():
    ny, nx = 130, 200
    nmy, nmx = 4, 5
    cy = (np.arange(-2, nmy + 2) + 0.5) * ny / nmy - 0.5
    cx = (np.arange(-2, nmx + 2) + 0.5) * nx / nmx - 0.5
    mesh = np.ascontiguousarray(10 + 0.3 * cx[None, :] - 0.2 * cy[:, None])
    for step in (1, 2):
        shape = ((ny + step - 1) // step, (nx + step - 1) // step)
        back, rms = bk.interp_mesh_pair(mesh, mesh * 0 + 2.0, ny, nx, 2, step, 1e-30,
                                        np.empty(shape, np.float32), np.empty(shape, np.float32))
        yy, xx = np.mgrid[0:shape[0], 0:shape[1]] * step + (step - 1) / 2
        assert np.abs(back - (10 + 0.3 * xx - 0.2 * yy)).max() < 1e-3
        assert np.allclose(rms, 2.0)


def test_binned_residual_smooth_threshold_and_dilate_match_scipy():
    rng = np.random.default_rng(7)
    img = rng.normal(0, 1, (41, 37)).astype(np.float32)
    img[3, 4] = np.nan
    mask = np.zeros(img.shape, np.uint16)
    mask[10, 10] = MaskBit.SAT
    back2 = np.full((21, 19), 0.25, np.float32)
    res = bk.binned_residual(img, mask, int(MaskBit.SAT), back2, np.empty((21, 19), np.float32))
    clean = np.where(np.isfinite(img) & (mask == 0), img - 0.25, 0.0)
    pad = np.pad(clean, ((0, 1), (0, 1)))
    cnt = np.pad(np.ones(img.shape), ((0, 1), (0, 1)))
    ref = (pad[0::2, 0::2] + pad[1::2, 0::2] + pad[0::2, 1::2] + pad[1::2, 1::2]) / (
        cnt[0::2, 0::2] + cnt[1::2, 0::2] + cnt[0::2, 1::2] + cnt[1::2, 1::2])
    assert np.allclose(res, ref, atol=1e-6)

    k = gaussian_kernel1d(1.2)
    rmsmap = np.full(img.shape, 0.3, np.float32)
    src = np.nan_to_num(img)
    got = bk.smooth_threshold(src, k, rmsmap, 1.0, np.empty(img.shape, bool))
    conv = ndimage.convolve(src.astype(float), np.outer(k, k), mode="constant")
    assert np.mean(got == (conv > 0.3)) > 0.999

    b = rng.random((50, 60)) > 0.97
    for r in (1, 2, 3, 5):
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
        disk = xx ** 2 + yy ** 2 <= r * r
        assert np.array_equal(bk.dilate_disk(b, r), ndimage.binary_dilation(b, disk))


def _sky_scene(seed=1, n=512):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:n, 0:n]
    sky = 800.0 * (1 + 0.2 * (xx / n - 0.5) - 0.1 * (yy / n - 0.5))
    img = sky.copy()
    # bright round sources: they must not lift the background
    for _ in range(60):
        y, x = rng.uniform(0, n, 2)
        img += rng.uniform(2e3, 5e4) * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 2.0 ** 2))
    img = rng.poisson(img).astype(np.float32)
    return img, sky


def test_background_on_a_gradient_with_bright_sources():
    img, sky = _sky_scene()
    one = Background(img, cfg=BackgroundConfig(passes=1))
    two = Background(img)
    res1 = one.back() - sky
    res2 = two.back() - sky
    noise = np.sqrt(800.0)
    # both unbiased to a small fraction of the noise; the masked second pass no worse
    assert abs(np.median(res2)) < 0.05 * noise
    assert np.abs(res2).max() < 0.3 * noise
    assert abs(np.median(res2)) <= abs(np.median(res1)) + 0.01 * noise
    assert abs(two.global_rms - noise) < 0.05 * noise
    assert two.back().dtype == np.float32 and two.rms().shape == img.shape
    assert np.allclose(two.subfrom(img), img - two.back())


def test_background_mask_none_equals_empty_mask_and_all_masked_fails():
    img, _sky = _sky_scene(seed=2, n=256)
    a = Background(img)
    b = Background(img, np.zeros(img.shape, np.uint16))
    assert np.array_equal(a.back(), b.back()) and np.array_equal(a.rms(), b.rms())
    with pytest.raises(AlgorithmError):
        Background(img, np.full(img.shape, MaskBit.BAD, np.uint16))
