"""Detection kernels (runs, labelling, fused matched filter, per-footprint deblending tree)
against scipy and slow plain-Python references, and detect_sources on planted stars."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from minidr.config import DetectionConfig
from minidr.image import detect_kernels as dk
from minidr.image.background import gaussian_kernel1d
from minidr.image.deblend import deblend_peaks
from minidr.image.detect import CLEAN_BITS, detect_sources
from minidr.products import MaskBit

EIGHT = np.ones((3, 3), bool)


def naive_persistence(sm, labels, variance, rms, knorm, nsig, contrast):
    """The deblending tree over the whole image at once, pixel by pixel in one global
    order (decreasing value, ties in raster order): the reference for deblend_peaks."""
    ny, nx = sm.shape
    flat = np.flatnonzero(labels.ravel())
    order = flat[np.argsort(-sm.ravel()[flat], kind="stable")]
    total = ndimage.sum_labels(sm.astype(np.float64), labels, np.arange(labels.max() + 1))
    rank = -np.ones(ny * nx, int)
    parent = list(range(order.size))
    flux = [0.0] * order.size
    keep = [False] * order.size

    def find(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for k, p in enumerate(order):
        y, x = divmod(int(p), nx)
        rank[p] = k
        flux[k] = float(sm[y, x])
        roots = set()
        for yy in range(max(0, y - 1), min(ny, y + 2)):
            for xx in range(max(0, x - 1), min(nx, x + 2)):
                q = rank[yy * nx + xx]
                if (yy, xx) != (y, x) and q >= 0:
                    roots.add(find(q))
        if not roots:
            continue
        win = min(roots)
        for r in roots - {win}:
            py, px = divmod(int(order[r]), nx)
            prom = sm[py, px] - sm[y, x]
            sig = knorm * math.sqrt(max(variance[py, px], rms[py, px] ** 2))
            if prom >= nsig * sig and (flux[r] >= contrast * total[labels[y, x]] or prom >= 2 * nsig * sig):
                keep[r] = True
            parent[r] = win
            flux[win] += flux[r]
        parent[k] = win
        flux[win] += flux[k]
    kept = [order[k] for k in range(order.size) if keep[k] or parent[k] == k]
    return np.array([p // nx for p in kept], int), np.array([p % nx for p in kept], int)


def stars(shape, xs, ys, fluxes, sigma=1.5, noise=3.0, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    img = rng.normal(0, noise, shape)
    for x, y, f in zip(xs, ys, fluxes):
        img += f / (2 * math.pi * sigma ** 2) * np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / sigma ** 2)
    return img.astype(np.float32)


@pytest.mark.parametrize("seed,p", [(1, 0.6), (2, 0.9), (3, 0.3)])
def test_label8_equals_scipy_numbering(seed, p):
    rng = np.random.default_rng(seed)
    b = rng.uniform(size=(61, 87)) > p
    lab, n = dk.label8(b)
    ref, nref = ndimage.label(b, structure=EIGHT)
    assert n == nref and np.array_equal(lab, ref)


def test_runs_stats_and_selection():
    rng = np.random.default_rng(4)
    b = rng.uniform(size=(40, 53)) > 0.7
    img = rng.normal(size=b.shape).astype(np.float32)
    start, x0, x1 = dk.row_runs(b)
    assert start[-1] == x0.size and np.all(x1 >= x0)
    lab, n = dk.label_runs(start, x0, x1)
    labels = dk.paint_runs(b.shape[0], b.shape[1], start, x0, x1, lab)
    voff, vals = dk.run_values(img, start, x0, x1)
    assert np.array_equal(vals, img[b])  # raster order
    npix, tot = dk.run_stats(start, x0, x1, voff, vals, lab, n)
    rnpix, rtot, _, _, _ = dk.label_stats(labels, n, img)
    assert np.array_equal(npix, rnpix) and np.array_equal(tot, rtot)
    # runs of a label image give back the same image
    s2, a2, b2, l2 = dk.label_row_runs(labels)
    assert np.array_equal(dk.paint_runs(b.shape[0], b.shape[1], s2, a2, b2, l2), labels)
    keep = npix >= 3
    keep[0] = False
    ns, nx0, nx1, nvo, nlab, m = dk.select_runs(start, x0, x1, voff, lab, keep)
    sel = dk.paint_runs(b.shape[0], b.shape[1], ns, nx0, nx1, nlab)
    ref, nref = ndimage.label(np.isin(labels, np.flatnonzero(keep)), structure=EIGHT)
    assert m == nref and np.array_equal(sel, ref)
    assert np.array_equal(np.concatenate([vals[o:o + e - s + 1] for o, s, e in zip(nvo, nx0, nx1)]), img[sel > 0])


def test_smooth_threshold_matches_scipy_with_mask_and_nan():
    rng = np.random.default_rng(5)
    img = rng.normal(size=(70, 45)).astype(np.float32)
    img[3, 4] = np.nan
    img[10, 11] = np.inf
    mask = np.zeros(img.shape, np.uint16)
    mask[20:23, 30] = int(MaskBit.BAD)
    mask[40, 2] = int(MaskBit.SAT)  # not a cleaned bit: kept
    k = gaussian_kernel1d(1.3, 3.5)
    clean = np.where(np.isfinite(img) & ((mask & CLEAN_BITS) == 0), img, 0).astype(np.float64)
    ref = ndimage.convolve(clean, np.outer(k, k), mode="constant")
    noise = rng.uniform(0.5, 1.5, img.shape).astype(np.float32)
    sm, core = dk.smooth_threshold(img, mask, CLEAN_BITS, k, noise, 0.3, True)
    assert sm.dtype == np.float32 and np.allclose(sm, ref, atol=1e-5)
    assert np.array_equal(core, sm > 0.3 * noise)
    # the public wrappers: the unmasked filter is the same as the old clean + convolve
    assert np.array_equal(dk.convolve_separable(dk.clean_image(img, mask, CLEAN_BITS), k), sm)
    assert np.array_equal(dk.threshold_map(sm, noise, 0.3), core)
    # the runs-only version: the same pixels and values, no full-frame output
    start, x0, x1, voff, vals = dk.smooth_runs(img, mask, CLEAN_BITS, k, noise, 0.3)
    rs, r0, r1 = dk.row_runs(core)
    assert np.array_equal(start, rs) and np.array_equal(x0, r0) and np.array_equal(x1, r1)
    assert np.array_equal(vals, sm[core]) and np.array_equal(voff, dk.run_values(sm, rs, r0, r1)[0])


def test_smooth_runs_many_strips_and_full_rows():
    rng = np.random.default_rng(6)
    img = rng.normal(size=(203, 31)).astype(np.float32)  # several blocks of rows, last one short
    img[100:104] = 50.0  # rows above threshold end to end
    k = gaussian_kernel1d(1.0, 3.5)
    noise = np.ones(img.shape, np.float32)
    none = np.zeros((1, 1), np.uint16)
    sm, core = dk.smooth_threshold(img, none, 0, k, noise, 0.5, True)
    start, x0, x1, voff, vals = dk.smooth_runs(img, none, 0, k, noise, 0.5)
    assert np.array_equal(vals, sm[core])
    assert np.array_equal(dk.paint_runs(*img.shape, start, x0, x1, np.ones(x0.size, np.int32)) > 0, core)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_deblend_peaks_equals_global_tree(seed):
    rng = np.random.default_rng(seed)
    shape = (80, 96)
    n = 25
    img = stars(shape, rng.uniform(3, 93, n), rng.uniform(3, 77, n), rng.uniform(200, 5000, n), seed=seed)
    k = gaussian_kernel1d(1.5, 3.5)
    knorm = float((k * k).sum())
    rms = np.full(shape, 3.0, np.float32)
    var = (9.0 + np.maximum(img, 0)).astype(np.float32)
    sm = dk.convolve_separable(img, k)
    labels, nl = dk.label8(dk.threshold_map(sm, rms, 4.0 * knorm))
    cfg = DetectionConfig(deblend_nsigma=2.0)
    py, px = deblend_peaks(sm, labels, nl, var, rms, knorm, cfg)
    ry, rx = naive_persistence(sm, labels, var, rms, knorm, 2.0, cfg.deblend_contrast)
    # same peaks, and in decreasing height with ties in raster order
    got = py * shape[1] + px
    ref = ry * shape[1] + rx
    assert np.array_equal(np.sort(got), np.sort(ref))
    assert np.array_equal(got, np.sort(got)[np.argsort(-sm.ravel()[np.sort(got)], kind="stable")])
    assert len(got) > nl  # some footprints were split


def test_detect_sources_finds_planted_stars_and_footprints():
    shape = (120, 150)  # not square
    xs = np.array([20.3, 60.7, 66.2, 130.1, 100.0])
    ys = np.array([30.2, 80.1, 83.9, 15.5, 100.4])
    fl = np.array([3000.0, 4000.0, 2500.0, 1500.0, 5000.0])
    img = stars(shape, xs, ys, fl)
    rms = np.full(shape, 3.0, np.float32)
    det = detect_sources(img, None, None, rms, 1.5 * 2.3548)
    assert len(det) == 5
    d = np.hypot(det.x[:, None] - xs[None, :], det.y[:, None] - ys[None, :])
    assert np.all(d.min(axis=0) < 1.0)
    # the close pair shares one grown footprint and is two children
    pair = np.flatnonzero(d[:, 1] < 1)[0], np.flatnonzero(d[:, 2] < 1)[0]
    assert det.footprint[pair[0]] == det.footprint[pair[1]] and det.nchild[pair[0]] == 2
    assert np.all(det.significance > 5)
    assert np.array_equal(det.peak, np.sort(det.peak)[::-1])  # decreasing height
    # footprints: the threshold components (min_pixels) grown by ceil(grow * fwhm) pixels
    k = gaussian_kernel1d(1.5, 3.5)
    knorm = float((k * k).sum())
    sm = dk.convolve_separable(img, k)
    core = sm > 5.0 * knorm * rms
    lab, n = ndimage.label(core, structure=EIGHT)
    big = np.isin(lab, np.flatnonzero(np.bincount(lab.ravel()) >= 3)) & core
    r = math.ceil(1.5 * 2.3548)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    grown = ndimage.binary_dilation(big, structure=xx ** 2 + yy ** 2 <= r * r)
    ref, nref = ndimage.label(grown, structure=EIGHT)
    assert np.array_equal(det.footprints, ref)
    assert np.array_equal(det.core, ndimage.label(big, structure=EIGHT)[0][det.y, det.x])
    assert np.array_equal(det.npix, np.bincount(lab.ravel())[lab[det.y, det.x]])


def test_detect_sources_masked_edge_and_empty():
    shape = (64, 80)
    img = stars(shape, [10.0, 40.0, 77.0], [20.0, 30.0, 40.0], [3000.0, 3000.0, 3000.0])
    rms = np.full(shape, 3.0, np.float32)
    mask = np.zeros(shape, np.uint16)
    mask[25:36, 35:46] = int(MaskBit.BAD)
    det = detect_sources(img, None, mask, rms, 3.5, DetectionConfig(edge_margin=5))
    assert sorted(zip(det.x.tolist(), det.y.tolist())) == [(10, 20)]
    none = detect_sources(np.zeros(shape, np.float32), None, None, rms, 3.5)
    assert len(none) == 0 and not none.footprints.any() and none.footprints.dtype == np.int32


def test_stable_order_is_a_stable_argsort():
    rng = np.random.default_rng(7)
    v = rng.choice(np.array([-2.5, -1.0, -0.0, 0.0, 1e-30, 1.0, 3.0, -1e-30], np.float32), 500)
    v = np.concatenate([v, rng.normal(size=300).astype(np.float32)])
    assert np.array_equal(dk._stable_order(v), np.argsort(v, kind="stable"))


def test_deblend_peaks_with_plateaus_equals_global_tree():
    """Equal smoothed values (ties go in raster order) in single- and multi-peak footprints."""
    rng = np.random.default_rng(8)
    shape = (60, 70)
    n = 18
    img = stars(shape, rng.uniform(3, 67, n), rng.uniform(3, 57, n), rng.uniform(300, 4000, n), seed=8)
    k = gaussian_kernel1d(1.5, 3.5)
    knorm = float((k * k).sum())
    sm = np.round(dk.convolve_separable(img, k) / 2.0).astype(np.float32) * 2.0  # plateaus
    rms = np.full(shape, 3.0, np.float32)
    labels, nl = dk.label8(dk.threshold_map(sm, rms, 4.0 * knorm))
    cfg = DetectionConfig(deblend_nsigma=1.0)
    py, px = deblend_peaks(sm, labels, nl, rms * rms, rms, knorm, cfg)
    ry, rx = naive_persistence(sm, labels, rms * rms, rms, knorm, 1.0, cfg.deblend_contrast)
    assert np.array_equal(np.sort(py * shape[1] + px), np.sort(ry * shape[1] + rx))


def test_find_peaks_equals_the_full_frame_chain():
    """find_peaks (runs only) against clean_image + convolve_separable + threshold_map on
    sqrt(max(variance, rms^2)) + label8 + deblend_peaks + the min_pixels cut on full frames."""
    from minidr.image.detect import find_peaks

    rng = np.random.default_rng(9)
    shape = (90, 110)
    n = 30
    img = stars(shape, rng.uniform(2, 108, n), rng.uniform(2, 88, n), rng.uniform(60, 6000, n), seed=9)
    mask = np.zeros(shape, np.uint16)
    mask[40:44, 50:60] = int(MaskBit.BAD)
    rms = np.full(shape, 3.0, np.float32)
    var = (9.0 + np.maximum(img, 0) * 0.5).astype(np.float32)
    cfg = DetectionConfig(min_pixels=40)
    py, px, npix = find_peaks(img, mask, rms, var, 3.3, cfg, noise_variance=True)
    k = gaussian_kernel1d(3.3 / 2.3548, 3.5)
    knorm = float((k * k).sum())
    sm = dk.convolve_separable(dk.clean_image(img, mask, CLEAN_BITS), k)
    noise = np.sqrt(np.maximum(np.square(rms, dtype=np.float32), var))
    labels, nl = dk.label8(dk.threshold_map(sm, noise, cfg.threshold * knorm))
    ry, rx = deblend_peaks(sm, labels, nl, var, rms, knorm, cfg)
    rn = dk.label_stats(labels, nl, sm)[0][labels[ry, rx]]
    ok = rn >= cfg.min_pixels
    assert ok.sum() < ok.size  # some peaks in small components
    assert np.array_equal(py, ry[ok]) and np.array_equal(px, rx[ok]) and np.array_equal(npix, rn[ok])
    # and with the rms alone it is detect_sources' peaks
    det = detect_sources(img, var, mask, rms, 3.3, cfg)
    qy, qx, qn = find_peaks(img, mask, rms, var, 3.3, cfg)
    assert np.array_equal(qy, det.y) and np.array_equal(qx, det.x) and np.array_equal(qn, det.npix)
