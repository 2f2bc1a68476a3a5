"""Benchmark of minidr.image against sep and photutils on one simulated frame.

    .venv/bin/python benchmarks/bench_image.py [--size 4096] [--stars 20000] [--skip-photutils]

Renders a frame (Moffat stars at sub-pixel positions with known fluxes, sky 800 e- with a
gradient, Poisson + read noise), then times on the same image:

* minidr: Background; the whole chain (``characterize``: background, detection, PSF fit,
  deblending, measurement) with 1 and 2 numba threads; numba compile time apart.
* sep: Background + extract + sum_circle.
* photutils: Background2D + detect_sources + SourceCatalog + aperture_photometry.

and reports pixel rates (Mpix/s), their ratios, completeness (S/N >= 10 stars found within
1") and purity (detections with a truth counterpart within 1").
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import numpy as np


def render(size, n_stars, seed=1):
    from minidr.image import kernels

    rng = np.random.default_rng(seed)
    ny = nx = size
    fwhm, beta = 3.6, 3.0
    alpha = fwhm / (2 * math.sqrt(2 ** (1 / beta) - 1))
    x = rng.uniform(2, nx - 3, n_stars)
    y = rng.uniform(2, ny - 3, n_stars)
    mag = rng.uniform(16, 23.5, n_stars)
    flux = 10 ** (-0.4 * (mag - 28.0))
    one = np.ones(n_stars)
    model = kernels.render_psf_models(ny, nx, x, y, flux, alpha * one, beta * one, 0.02 * one, -0.01 * one, 20)
    yy, xx = np.mgrid[0:ny, 0:nx]
    sky = 800.0 * (1 + 0.2 * (xx / nx - 0.5) - 0.1 * (yy / ny - 0.5))
    img = rng.poisson(np.maximum(model + sky, 0)).astype(np.float32) + rng.normal(0, 5, (ny, nx)).astype(np.float32)
    var = (np.maximum(img, 0) + 25).astype(np.float32)
    return img, var, x, y, flux, fwhm


def score(dx, dy, tx, ty, tflux, rms, fwhm):
    from scipy.spatial import cKDTree

    snr = tflux / (rms * math.sqrt(4 * math.pi * (fwhm / 2.3548) ** 2))
    t = cKDTree(np.column_stack([tx, ty]))
    # stars without a brighter neighbour within 5 px
    nb = t.query_ball_point(np.column_stack([tx, ty]), 5.0)
    isolated = np.array([all(tflux[j] <= tflux[i] for j in n if j != i) for i, n in enumerate(nb)])
    sel = (snr >= 10) & isolated
    if len(dx) == 0:
        return 0.0, 0.0
    d = cKDTree(np.column_stack([dx, dy]))
    dist, _ = d.query(np.column_stack([tx[sel], ty[sel]]))
    comp = float(np.mean(dist <= 5.0))
    dist2, _ = t.query(np.column_stack([dx, dy]))
    pur = float(np.mean(dist2 <= 5.0))
    return comp, pur


CPU = {}


def timed(f, *a, **k):
    """(result, wall seconds); the CPU seconds of the call (all threads) go to ``CPU[f]``."""
    t0 = time.perf_counter()
    c0 = time.process_time()
    r = f(*a, **k)
    CPU[getattr(f, "__name__", str(f))] = time.process_time() - c0
    return r, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--stars", type=int, default=20000)
    ap.add_argument("--skip-photutils", action="store_true")
    args = ap.parse_args()

    import numba

    from minidr._jit import set_threads
    from minidr.config import Config
    from minidr.image import characterize as chmod
    from minidr.image.background import Background
    from minidr.image.characterize import characterize

    # CPU seconds of the detection passes inside characterize (the rest is background, PSF
    # model, residual pass and measurement)
    det_cpu = [0.0]
    detect_sources = chmod.detect_sources

    def timed_detect(*a, **k):
        c0 = time.process_time()
        try:
            return detect_sources(*a, **k)
        finally:
            det_cpu[0] += time.process_time() - c0

    chmod.detect_sources = timed_detect

    # compile (or load from cache) on a small frame first
    small, svar, *_ = render(512, 300, seed=2)
    _, t_compile = timed(characterize, small, svar, None, Config())
    print(f"numba compile / cache load + first small run: {t_compile:.1f} s")

    img, var, tx, ty, tflux, fwhm = render(args.size, args.stars)
    mpix = img.size / 1e6
    rms = math.sqrt(825.0)
    rows = []
    cpu = {}
    dcpu = {}
    for nthreads in (1, 2):
        set_threads(nthreads)
        _, tb = timed(Background, img)
        det_cpu[0] = 0.0
        ch, tc = timed(characterize, img, var, None, Config())
        cpu[nthreads] = CPU["characterize"]
        dcpu[nthreads] = det_cpu[0]
        comp, pur = score(ch.sources["x"], ch.sources["y"], tx, ty, tflux, rms, fwhm)
        rows.append((f"minidr background ({nthreads} thr)", tb, None, None))
        rows.append((f"minidr whole chain ({nthreads} thr)", tc, comp, pur))
    set_threads(None)

    import sep

    def run_sep():
        b = sep.Background(img)
        data = img - b.back()
        sep.set_extract_pixstack(5_000_000)
        sep.set_sub_object_limit(4096)
        o = sep.extract(data, 5.0, err=b.globalrms)
        sep.sum_circle(data, o["x"], o["y"], 2 * fwhm, err=b.globalrms)
        return o

    _, tsb = timed(sep.Background, img)
    o, ts = timed(run_sep)
    comp, pur = score(o["x"], o["y"], tx, ty, tflux, rms, fwhm)
    rows.append(("sep background", tsb, None, None))
    rows.append(("sep Background+extract+sum_circle", ts, comp, pur))

    if not args.skip_photutils:
        from astropy.convolution import convolve
        from astropy.stats import SigmaClip
        from photutils.aperture import CircularAperture, aperture_photometry
        from photutils.background import Background2D, MedianBackground
        from photutils.segmentation import (
            SourceCatalog,
            detect_sources,
            make_2dgaussian_kernel,
        )

        def run_phot():
            b = Background2D(img, 64, filter_size=3, sigma_clip=SigmaClip(3.0), bkg_estimator=MedianBackground())
            data = img - b.background
            k = make_2dgaussian_kernel(fwhm, size=9)
            conv = convolve(data, k)
            seg = detect_sources(conv, 5.0 * b.background_rms * math.sqrt((k.array ** 2).sum()), npixels=3)
            cat = SourceCatalog(data, seg, convolved_data=conv)
            pos = np.column_stack([cat.xcentroid, cat.ycentroid])
            aperture_photometry(data, CircularAperture(pos, 2 * fwhm))
            return cat

        cat, tp = timed(run_phot)
        comp, pur = score(np.asarray(cat.xcentroid), np.asarray(cat.ycentroid), tx, ty, tflux, rms, fwhm)
        rows.append(("photutils Background2D+detect_sources+SourceCatalog+aperture_photometry", tp, comp, pur))

    print(f"\n{platform.node()} {platform.processor() or platform.machine()}, numba {numba.__version__}, "
          f"{args.size}x{args.size}, {args.stars} stars, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{'step':75s} {'time s':>7s} {'Mpix/s':>7s} {'compl':>6s} {'purity':>6s}")
    for name, t, c, p in rows:
        cs = f"{c:6.3f}" if c is not None else "     -"
        ps = f"{p:6.3f}" if p is not None else "     -"
        print(f"{name:75s} {t:7.2f} {mpix / t:7.2f} {cs} {ps}")
    ref = {r[0]: r[1] for r in rows}
    print("\nratios (pixel rate minidr / sep):")
    print(f"  whole chain 1 thread : {ref['sep Background+extract+sum_circle'] / ref['minidr whole chain (1 thr)']:.2f}")
    print(f"  whole chain 2 threads: {ref['sep Background+extract+sum_circle'] / ref['minidr whole chain (2 thr)']:.2f}")
    print(f"  background 1 thread  : {ref['sep background'] / ref['minidr background (1 thr)']:.2f}")
    print(f"  background 2 threads : {ref['sep background'] / ref['minidr background (2 thr)']:.2f}")
    print("CPU seconds (all threads; the wall times above include waiting on a shared machine):")
    print(f"  minidr whole chain 1 thread {cpu[1]:.2f}, 2 threads {cpu[2]:.2f}; "
          f"sep Background+extract+sum_circle {CPU['run_sep']:.2f}; "
          f"ratio sep / minidr (1 thread) {CPU['run_sep'] / cpu[1]:.3f}")
    print(f"  of which detection passes (detect_sources): 1 thread {dcpu[1]:.2f}, 2 threads {dcpu[2]:.2f}; "
          f"everything else (background, PSF, residual pass, measurement): 1 thread {cpu[1] - dcpu[1]:.2f}, "
          f"2 threads {cpu[2] - dcpu[2]:.2f}")


if __name__ == "__main__":
    main()
