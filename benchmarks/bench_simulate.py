"""Benchmark of the simulator's renderer and of one full raw frame.

    .venv/bin/python benchmarks/bench_simulate.py [--size 4096] [--objects 5000] [--threads N]

Prints wall times (best of --repeat, after a warm-up call that compiles or loads the numba
cache) for: rendering the objects (noise-free, numba), the whole science frame (render + sky +
Poisson + bleed + cosmic rays) and the conversion to amplifier ADU arrays.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--objects", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)

    from minidr._jit import set_threads
    from minidr.simulate import survey as sv
    from minidr.simulate.camera import make_camera
    from minidr.simulate.sky import make_catalog

    set_threads(args.threads)
    n = args.size
    side_deg = n * 0.2 / 3600.0
    area = side_deg ** 2
    dens = args.objects / area
    p = sv.SurveyParams(detectors=1, bands="r", shape=(n, n), star_density=0.43 * dens,
                        galaxy_density=0.57 * dens)
    camera = make_camera(1, (n, n), p.seed)
    det = camera.detectors[0]
    visits = sv.plan_visits(p, camera)
    v = visits[0]
    cat = make_catalog(np.random.default_rng(1), v.ra, v.dec, side_deg / 2, side_deg / 2, "r",
                       p.star_density, p.galaxy_density)
    mags = cat.mags["r"]
    resp = sv.response_map(p, camera, det, "r")

    def timeit(fn):
        """(best wall time, CPU time of that run) in seconds; CPU time shows the cost on a busy machine."""
        fn()
        best = (1e9, 0.0)
        for _ in range(args.repeat):
            t, c = time.perf_counter(), time.process_time()
            fn()
            best = min(best, (time.perf_counter() - t, time.process_time() - c))
        return best

    cards = sv.wcs_cards(v.ra, v.dec, det)
    w = sv.wcs_from_cards(cards)
    x, y = w.all_world2pix(cat.ra, cat.dec, 0)
    flux = 10 ** (-0.4 * (mags - v.zp))
    fwhm = np.full(len(x), v.fwhm / 0.2)
    cd = np.array([[cards["CD1_1"], cards["CD1_2"]], [cards["CD2_1"], cards["CD2_2"]]])
    gcov = sv.galaxy_unit_cov(cat, np.arange(len(x)), cd)
    re_px = np.nan_to_num(cat.half_light_radius) / 0.2
    sn = np.nan_to_num(cat.sersic_n, nan=1.0)

    def render():
        sv.render_objects((n, n), x, y, flux, cat.is_star, fwhm, v.beta, (v.psf_e1, v.psf_e2),
                          gcov, re_px, sn)

    def frame():
        rng = sv.frame_rng(p, v.expid, 1)
        e, *_ = sv.science_frame(p, camera, cat, mags, v, det, resp, rng)
        return e

    e = frame()

    def amps():
        sv.to_amp_arrays(p, det, e, np.random.default_rng(0))

    t_render = timeit(render)
    t_frame = timeit(frame)
    t_amps = timeit(amps)
    print(f"frame {n}x{n}, {cat.is_star.sum()} stars + {(~cat.is_star).sum()} galaxies, "
          f"{args.threads or 'all'} threads")
    for name, (wall, cpu) in [("render objects (numba)", t_render),
                              ("science frame (render+sky+noise+CR)", t_frame),
                              ("amplifier ADU arrays", t_amps)]:
        print(f"  {name:38s} wall {wall:7.3f} s   cpu {cpu:7.3f} s")


if __name__ == "__main__":
    main()
