"""Master bias, dark and flat recover planted truth; clipped stacking against numpy."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from minidr.calib import master_bias, master_dark, master_flat
from minidr.calib import kernels as k
from minidr.config import Config
from minidr.errors import InputError
from minidr.isr import run
from minidr.products import MaskBit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from naive_isr import make_raw, naive_clipped_mean  # noqa: E402

CFG = Config()
SHAPE = (80, 100)
RN = (5.0, 6.0, 4.5, 5.5)


@pytest.fixture(scope="module")
def truth():
    rng = np.random.default_rng(100)
    bias = 15 * np.sin(np.arange(SHAPE[1]) / 11.0)[None, :] + 3 * np.cos(np.arange(SHAPE[0]) / 5.0)[:, None]
    dark = np.full(SHAPE, 0.05)
    hot = [(10, 10), (40, 77), (70, 3)]
    for y, x in hot:
        dark[y, x] = 20.0
    flat = 1 + 0.1 * np.sin(np.arange(SHAPE[1]) / 15.0)[None, :] * np.cos(np.arange(SHAPE[0]) / 20.0)[:, None]
    flat[:, 33] = 0.2  # a bad column
    flat[50, 60] = 2.0  # an over-responsive pixel
    return dict(rng=rng, bias=bias, dark=dark, hot=hot, flat=flat)


@pytest.fixture(scope="module")
def masters(truth):
    rng = truth["rng"]
    biases = [make_raw(truth["bias"], rng=rng, imagetyp="bias", exptime=0.0, poisson=False, path=f"bias{i}.fits",
                       drift=lambda r, i=i: 3.0 * i + 0.01 * r, rdnoise=RN)
              for i in range(7)]
    # one bias frame carries a cosmic ray, which clipping must reject
    biases[3].amp_pixels[0][20, biases[3].info.amps[0].datasec.x0 + 20] += 5000
    b = master_bias(biases, CFG)
    t = 300.0
    darks = [make_raw(truth["bias"] + truth["dark"] * t, rng=rng, imagetyp="dark", exptime=t,
                      path=f"dark{i}.fits", rdnoise=RN) for i in range(7)]
    d = master_dark(darks, b, CFG)
    flats = [make_raw(truth["bias"] + truth["dark"] * 2.0 + level * truth["flat"], rng=rng, imagetyp="flat",
                      exptime=2.0, band="g", path=f"flat{i}.fits", rdnoise=RN)
             for i, level in enumerate((15000.0, 20000.0, 18000.0, 25000.0, 16000.0))]
    f = master_flat(flats, b, d, CFG)
    return b, d, f


def test_master_bias_recovers_structure(truth, masters):
    b = masters[0]
    assert b.kind == "bias" and b.detector == 1 and b.band is None
    assert b.inputs == tuple(f"bias{i}.fits" for i in range(7))
    resid = b.image - truth["bias"]
    # noise of a 7-frame clipped mean: ~rn/sqrt(7) ~ 2.1 e- (plus ~0.6 e- ADU rounding)
    assert abs(resid.mean()) < 0.3
    assert resid.std() < 1.2 * 5.5 / np.sqrt(7) + 0.3
    # the cosmic ray in one frame is gone
    assert abs(resid[20, 20]) < 10


def test_master_dark_recovers_current_and_flags_hot(truth, masters):
    d = masters[1]
    assert d.kind == "dark"
    normal = np.ones(SHAPE, bool)
    for y, x in truth["hot"]:
        normal[y, x] = False
        assert d.mask[y, x] & MaskBit.HOT
        assert d.image[y, x] == pytest.approx(20.0, rel=0.02)
    hot = (d.mask & MaskBit.HOT) != 0
    assert hot.sum() == len(truth["hot"])  # no false hot pixel
    assert abs(np.mean(d.image[normal]) - 0.05) < 0.005  # e-/s


def test_master_flat_recovers_response_and_flags_bad(truth, masters):
    f = masters[2]
    assert f.kind == "flat" and f.band == "g"
    good = (f.mask & MaskBit.BAD) == 0
    want = truth["flat"] / np.median(truth["flat"][good])
    ratio = f.image[good] / want[good]
    assert abs(np.median(f.image[good]) - 1.0) < 0.01
    assert np.std(ratio) < 0.005  # 5 flats of ~1.5e4-2.5e4 e-: ~0.3% per pixel
    bad = ~good
    assert bad[:, 33].all() and bad[50, 60]
    assert bad.sum() == SHAPE[0] + 1


def test_master_flat_noise_is_its_measured_scatter(truth, masters):
    """The master flat's own relative noise per pixel (recorded for the ISR variance) is the
    scatter of its values about the true response."""
    f = masters[2]
    good = (f.mask & MaskBit.BAD) == 0
    ratio = f.image[good] / (truth["flat"] / np.median(truth["flat"][good]))[good]
    measured = np.std(ratio / np.median(ratio))
    assert 0.002 < measured < 0.005  # 5 flats of 1.5e4-2.5e4 e-
    assert f.noise == pytest.approx(measured, rel=0.2)


def test_variance_includes_the_flat_noise(truth, masters):
    """ISR adds (flat.noise * image)^2 to the variance, and nothing else changes."""
    import dataclasses

    b, d, f = masters
    raw = make_raw(truth["bias"] + 5000.0 * truth["flat"], rng=np.random.default_rng(6), exptime=60.0,
                   band="g", rdnoise=RN)
    plain = run(raw, b, d, dataclasses.replace(f, noise=0.0), CFG)
    noisy = run(raw, b, d, dataclasses.replace(f, noise=0.02), CFG)
    assert np.array_equal(plain.image, noisy.image) and np.array_equal(plain.mask, noisy.mask)
    ok = plain.mask == 0
    extra = (noisy.variance - plain.variance)[ok]
    assert np.allclose(extra, (0.02 * plain.image[ok]) ** 2, rtol=1e-3)
    assert extra.mean() > 0.1 * plain.variance[ok].mean()  # the test is not vacuous


def test_science_chain_with_masters(truth, masters):
    rng = np.random.default_rng(5)
    b, d, f = masters
    sky = 800.0
    raw = make_raw(truth["bias"] + truth["dark"] * 60 + sky * truth["flat"], rng=rng, exptime=60.0,
                   band="g", rdnoise=RN)
    e = run(raw, b, d, f, CFG)
    good = (e.mask & (MaskBit.BAD | MaskBit.HOT)) == 0
    scale = np.median(truth["flat"][(f.mask & MaskBit.BAD) == 0])
    assert abs(np.median(e.image[good]) - sky * scale) < 3.0
    assert (e.mask[:, 33] & MaskBit.BAD).all()
    for y, x in truth["hot"]:
        assert e.mask[y, x] & MaskBit.HOT


def test_clipped_mean_kernel_matches_naive():
    rng = np.random.default_rng(3)
    stack = rng.normal(100, 5, (9, 30, 40)).astype(np.float32)
    stack[2, 5, 5] = 1e4
    stack[4, :, 7] = -500
    stack[1, 10, 10] = np.nan
    stack[:, 0, 0] = 7.0  # zero spread
    for clip, iters, floor in ((3.0, 3, 0.0), (2.0, 1, 0.0), (5.0, 5, 0.0), (3.0, 3, 5.0)):
        got, nkept = k.clipped_mean_stack(stack, clip, iters, floor)
        want = naive_clipped_mean(stack, clip, iters, floor)
        assert np.allclose(got, want, rtol=1e-6, atol=1e-4)
    got, nkept = k.clipped_mean_stack(stack, 3.0, 3, 0.0)
    assert got[5, 5] == pytest.approx(100, abs=6) and nkept[5, 5] <= 8
    assert nkept[10, 10] <= 8 and got[0, 0] == 7.0


@pytest.mark.parametrize("n", [2, 3, 4, 5, 7])
def test_clipped_mean_shortcut_is_bit_identical_to_the_full_rule(n):
    """The row-wise shortcut (plain mean where no value can be clipped) gives, bit for bit,
    the per-pixel rule of ``_clipped_mean_1d``: with a floor that makes most pixels take the
    shortcut, with outliers, NaN, inf and one or three iterations."""
    rng = np.random.default_rng(10 + n)
    stack = rng.normal(50, 3, (n, 24, 30)).astype(np.float32)
    stack[0, 3, :] += rng.choice([0.0, 12.0, 40.0], 30).astype(np.float32)  # some clipped
    stack[n - 1, 7, 4] = np.nan
    stack[0, 9, 9] = np.inf
    stack[:, 11, 11] = 5.0
    for clip, iters, floor in ((3.0, 3, 3.0), (3.0, 1, 3.0), (2.5, 3, 1.0), (3.0, 3, 0.0)):
        got, nk = k.clipped_mean_stack(stack, clip, iters, floor)
        keep = np.empty(n, np.uint8)
        buf = np.empty(n)
        for y in range(stack.shape[1]):
            for x in range(stack.shape[2]):
                want, m = k._clipped_mean_1d(stack[:, y, x].astype(np.float64), keep, buf, clip, iters, floor)
                assert np.float32(want).tobytes() == got[y, x].tobytes() and m == nk[y, x], (y, x)


def test_three_frames_with_equal_values_still_reject_a_cosmic_ray():
    """With 3 frames two equal (quantised) values make the MAD 0: the frame-noise floor
    must still reject the third frame's hit."""
    rng = np.random.default_rng(4)
    frames = [np.round(rng.normal(13, 6, (40, 50))).astype(np.float32) for _ in range(3)]
    frames[1][:] = frames[0]
    frames[2][:] = frames[0]
    frames[2][10, 10] += 540.0
    frames[0][5, 5] += 300.0
    from minidr.calib.combine import noise_floor

    floor = noise_floor([rng.normal(13, 6, (40, 50)) for _ in range(3)])
    assert floor == pytest.approx(6.0, rel=0.15)
    got, n = k.clipped_mean_stack(np.stack(frames), 3.0, 3, floor)
    assert got[10, 10] == frames[0][10, 10] and n[10, 10] == 2
    assert got[5, 5] == frames[1][5, 5]


def test_refuses_empty_and_mixed_inputs(truth, masters):
    rng = np.random.default_rng(1)
    with pytest.raises(InputError, match="no bias"):
        master_bias([], CFG)
    a = make_raw(np.zeros(SHAPE), rng=rng, imagetyp="bias", detector=1, path="a.fits")
    c = make_raw(np.zeros(SHAPE), rng=rng, imagetyp="bias", detector=2, path="c.fits")
    with pytest.raises(InputError, match=r"mixed detectors.*a\.fits.*c\.fits"):
        master_bias([a, c], CFG)
    fg = make_raw(np.full(SHAPE, 1e4), rng=rng, imagetyp="flat", band="g", path="fg.fits")
    fr = make_raw(np.full(SHAPE, 1e4), rng=rng, imagetyp="flat", band="r", path="fr.fits")
    with pytest.raises(InputError, match=r"one band.*fg\.fits.*fr\.fits"):
        master_flat([fg, fr], masters[0], masters[1], CFG)
    with pytest.raises(InputError, match="not dark"):
        master_dark([a], masters[0], CFG)
    d2 = make_raw(np.zeros((40, 40)), rng=rng, imagetyp="dark", path="d2.fits")
    with pytest.raises(InputError, match="master bias"):
        master_dark([d2], masters[0], CFG)
