"""ISR throughput on a 4096x4096, 4-amplifier frame (2x2 amps of 2048x2048 + overscan).

Reports Mpix/s (output pixels) for: a plain numpy 4-pass ISR, two memory copies, the fused
minidr ISR kernel and the full ``isr.run`` (1 and 2 threads), cosmic-ray detection
separately, and the numba compile time (in a fresh process with an empty cache).

The raw amplifiers are uint16, as ``read_raw`` returns BITPIX 16 / BZERO 32768 data. The
fused pass reads 20 bytes per output pixel (raw uint16 2, bias, dark and flat float32 12,
three uint16 calib masks 6) and writes 10 (image and variance float32, mask uint16): 30 B/px.
The memory copies it is compared with ("memcpy" = ``np.copyto``, one thread):

* ``memcpy float32 frame``: the 4096^2 float32 output frame (4 B/px read + 4 written);
* ``memcpy of the ISR's bytes``: a uint8 buffer of 15 B/px copied to another (15 read + 15
  written = 30 B/px, what the fused pass moves).

GB/s = those bytes / time (write-allocate reads not counted).
``--astroscrappy`` adds a timing and agreement comparison with astroscrappy (L.A.Cosmic).

    .venv/bin/python benchmarks/bench_isr.py [--size 4096] [--repeat 3] [--astroscrappy]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


CPU = False  # --cpu-time: single-thread figures from process CPU time (for a loaded machine)


def best(fn, repeat, setup=None):
    """Fastest of ``repeat`` calls, seconds (wall clock, or process CPU time with --cpu-time).
    ``setup()``, untimed, makes the arguments of each call: ``fn(*setup())``."""
    clock = time.process_time if CPU else time.perf_counter
    times = []
    for _ in range(repeat):
        args = setup() if setup is not None else ()
        t = clock()
        fn(*args)
        times.append(clock() - t)
    return min(times)


def numpy_isr(raw, bias, dark, flat, exptime):
    """Plain numpy, four passes over the frame (overscan+trim+place, gain+bias, dark+flat,
    variance+mask); the per-row overscan median and running median are vectorised."""
    from numpy.lib.stride_tricks import sliding_window_view

    ny, nx = raw.info.shape
    img = np.empty((ny, nx), np.float32)
    rn2 = np.empty((ny, nx), np.float32)
    sat = np.empty((ny, nx), bool)
    gain = np.empty((ny, nx), np.float32)
    for amp, pix in zip(raw.info.amps, raw.amp_pixels):  # pass 1
        b, d, t = amp.biassec, amp.datasec, amp.detsec
        rows = np.median(pix[b.slices], axis=1)
        pad = np.pad(rows, 15, mode="edge")
        level = np.median(sliding_window_view(pad, 31), axis=1)
        block = pix[d.slices] - level[:, None].astype(np.float32)
        s = pix[d.slices] >= amp.saturate
        if t.flip_x:
            block, s = block[:, ::-1], s[:, ::-1]
        if t.flip_y:
            block, s = block[::-1], s[::-1]
        img[t.slices] = block
        sat[t.slices] = s
        gain[t.slices] = amp.gain
        rn2[t.slices] = amp.rdnoise ** 2
    img *= gain  # pass 2
    img -= bias
    img -= dark * np.float32(exptime)  # pass 3
    var = (np.maximum(img, 0) + rn2) / (flat * flat)  # pass 4
    img /= flat
    mask = sat.astype(np.uint16)
    return img, var, mask


def make_frame(size, rng):
    from naive_isr import gaussian_star, make_raw  # noqa: F401

    ny = nx = size
    truth = np.full((ny, nx), 800.0, np.float32)
    raw = make_raw(truth, rng=rng, poisson=False, drift=lambda r: 0.001 * r)
    # as read_raw returns BITPIX 16 data: uint16 (make_raw builds int32)
    return type(raw)(raw.info, [p.astype(np.uint16) for p in raw.amp_pixels])


def cold_compile_seconds():
    """Import and first ISR call in a fresh interpreter with an empty numba cache."""
    code = (
        "import time, numpy as np, sys; sys.path.insert(0, 'tests');"
        "t = time.perf_counter();"
        "from naive_isr import make_raw; from minidr.config import Config; from minidr.isr import run;"
        "from minidr.products import MasterCalib;"
        "rng = np.random.default_rng(0); raw = make_raw(np.full((64, 64), 500.0), rng=rng);"
        "z = np.zeros((64, 64), np.float32); m = np.zeros((64, 64), np.uint16);"
        "run(raw, MasterCalib('bias', 1, None, z, m, ()), MasterCalib('dark', 1, None, z, m, ()),"
        "    MasterCalib('flat', 1, 'r', z + 1, m, ()), Config());"
        "print(time.perf_counter() - t)"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        root = Path(__file__).resolve().parents[1]
        cold = float(subprocess.run([sys.executable, "-c", code], env=env, cwd=root, check=True,
                                    capture_output=True, text=True).stdout.split()[-1])
        warm = float(subprocess.run([sys.executable, "-c", code], env=env, cwd=root, check=True,
                                    capture_output=True, text=True).stdout.split()[-1])
    return cold, warm


def cr_scene(size, rng, n_stars, n_cr):
    from naive_isr import gaussian_star

    shape = (size, size)
    truth = np.full(shape, 300.0)
    for _ in range(n_stars):
        y, x = rng.uniform(8, size - 8, 2)
        s = 10 ** rng.uniform(3, 6)
        fwhm = rng.uniform(3, 6)
        r = int(3 * fwhm)
        iy, ix = int(y), int(x)
        sl = (slice(max(0, iy - r), min(size, iy + r + 1)), slice(max(0, ix - r), min(size, ix + r + 1)))
        sub = gaussian_star((sl[0].stop - sl[0].start, sl[1].stop - sl[1].start), y - sl[0].start,
                            x - sl[1].start, s, fwhm)
        truth[sl] += sub
    img = rng.poisson(truth).astype(np.float32) + rng.normal(0, 5, shape).astype(np.float32)
    cr = np.zeros(shape, np.float32)
    ys = rng.integers(2, size - 2, n_cr)
    xs = rng.integers(2, size - 2, n_cr)
    amp = 10 ** rng.uniform(2.3, 4, n_cr)
    for i, (y, x, a) in enumerate(zip(ys, xs, amp)):
        if i % 3 == 0:
            cr[y, x] += a
        elif i % 3 == 1:
            cr[y:y + 2, x:x + 2] += a * np.array([[1, 0.5], [0.4, 0.3]])
        else:
            n = 6
            cr[y, max(0, x - n):x] += a / 2
    return img + cr, (truth + 25).astype(np.float32), cr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--astroscrappy", action="store_true")
    ap.add_argument("--no-compile", action="store_true", help="skip the cold-compile measurement")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time with process CPU time (meaningful for 1 thread on a busy machine)")
    ap.add_argument("--threads", default="1,2", help="thread counts to measure, e.g. 1 or 1,2")
    args = ap.parse_args()
    global CPU
    CPU = args.cpu_time
    threads_list = [int(t) for t in args.threads.split(",")]

    import numba

    from minidr.config import Config
    from minidr.isr import find_cosmic_rays, run
    from minidr.isr.isr import _plan, _run_amps
    from minidr.products import MasterCalib

    rng = np.random.default_rng(1)
    n = args.size
    npix = n * n / 1e6
    print(f"# bench_isr: {n}x{n} 4-amp frame, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus, numba {numba.__version__}, numpy {np.__version__}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.1f}, "
          f"timing: {'process CPU time' if CPU else 'wall clock'}")
    raw = make_frame(n, rng)
    bias = rng.normal(5, 1, (n, n)).astype(np.float32)
    dark = rng.uniform(0, 0.1, (n, n)).astype(np.float32)
    flat = rng.uniform(0.9, 1.1, (n, n)).astype(np.float32)
    m = np.zeros((n, n), np.uint16)
    mb = MasterCalib("bias", 1, None, bias, m, ())
    md = MasterCalib("dark", 1, None, dark, m, ())
    mf = MasterCalib("flat", 1, "r", flat, m, ())
    cfg = Config().replace(isr={"cosmic_rays": False})
    run(raw, mb, md, mf, cfg)  # warm up (loads from the numba cache or compiles)

    out = np.empty((n, n), np.float32)
    src = np.ones((n, n), np.float32)
    gb = n * n / 1e9
    t_copy = best(lambda: np.copyto(out, src), args.repeat)
    print(f"memcpy float32 frame       {npix / t_copy:8.0f} Mpix/s  ({t_copy * 1e3:.1f} ms, 8 B/px, "
          f"{8 * gb / t_copy:.1f} GB/s)")
    bsrc = np.ones(15 * n * n, np.uint8)
    bdst = np.empty_like(bsrc)
    t_bytes = best(lambda: np.copyto(bdst, bsrc), args.repeat)
    print(f"memcpy of the ISR's bytes  {npix / t_bytes:8.0f} Mpix/s  ({t_bytes * 1e3:.1f} ms, 30 B/px, "
          f"{30 * gb / t_bytes:.1f} GB/s)")
    t_np = best(lambda: numpy_isr(raw, bias, dark, flat, 30.0), max(1, args.repeat - 1))
    print(f"numpy 4-pass ISR           {npix / t_np:8.0f} Mpix/s  ({t_np * 1e3:.1f} ms)")

    plans = _plan(raw, cfg.isr)
    from minidr.isr import kernels as K

    o_img = np.zeros((n, n), np.float32)  # touched once: no page faults in the timed calls
    o_var = np.zeros((n, n), np.float32)
    o_mask = np.zeros((n, n), np.uint16)
    o_row = np.zeros(n, np.int64)

    def into(plans):
        for p in plans:
            d, t = p.datasec, p.detsec
            K.isr_amp(p.pixels, p.level, d.y0, d.y1, d.x0, d.x1, t.y0, t.x0, t.flip_x, t.flip_y,
                      p.gain, p.rdnoise, 0.005, p.saturate, True, bias, dark, flat, m, m, m, 30.0,
                      o_img, o_var, o_mask, o_row)
    for threads in threads_list:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        t_k = best(lambda: _run_amps(plans, (n, n), True, bias, dark, flat, (m, m, m), 30.0), args.repeat)
        t_k2 = best(lambda: into(plans), args.repeat)
        t_p = best(lambda: _plan(raw, cfg.isr), args.repeat)
        t_r = best(lambda: run(raw, mb, md, mf, cfg), args.repeat)
        print(f"minidr fused pass into existing arrays, {threads} thr {npix / t_k2:8.0f} Mpix/s  ({t_k2 * 1e3:.1f} ms, "
              f"{30 * gb / t_k2:.1f} GB/s; {t_k2 / t_copy:.2f}x the float32-frame memcpy, "
              f"{t_k2 / t_bytes:.2f}x the same-bytes memcpy; numpy 4-pass / fused {t_np / t_k2:.1f}x)")
        print(f"minidr fused pass, {threads} thr   {npix / t_k:8.0f} Mpix/s  ({t_k * 1e3:.1f} ms)"
              f"   overscan {t_p * 1e3:.1f} ms   isr.run (no CR) {npix / t_r:6.0f} Mpix/s ({t_r * 1e3:.1f} ms)")
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)

    img, var, cr = cr_scene(n, rng, n_stars=n * n // 20000, n_cr=n * n // 40000)
    mask = np.zeros(img.shape, np.uint16)
    ccfg = Config()
    find_cosmic_rays(img[:64, :64].copy(), var[:64, :64].copy(), mask[:64, :64].copy(), ccfg)
    for threads in threads_list:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        t_cr = best(lambda i, v, m: find_cosmic_rays(i, v, m, ccfg), args.repeat,
                    setup=lambda: (img.copy(), var.copy(), np.zeros(img.shape, np.uint16)))  # in place
        print(f"cosmic rays, {threads} thr          {npix / t_cr:8.0f} Mpix/s  ({t_cr * 1e3:.1f} ms; the input copies are not timed)")
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    m2 = np.zeros(img.shape, np.uint16)
    i2 = img.copy()
    find_cosmic_rays(i2, var.copy(), m2, ccfg)
    sig = cr > 3 * np.sqrt(var)
    flagged = (m2 & 8) != 0
    print(f"  injected CR pixels > 3 sigma: {sig.sum()}, flagged {np.mean(flagged[sig]) * 100:.1f}%")

    if args.astroscrappy:
        import astroscrappy

        t = time.perf_counter()
        crmask, _clean = astroscrappy.detect_cosmics(img, inmask=None, gain=1.0, readnoise=5.0,
                                                     satlevel=1e9, sigclip=4.5, objlim=5.0)
        t_as = time.perf_counter() - t
        print(f"astroscrappy (defaults, sigclip 4.5, objlim 5): {npix / t_as:8.1f} Mpix/s ({t_as:.2f} s), "
              f"flags {np.mean(crmask[sig]) * 100:.1f}% of CR pixels; "
              f"agreement with minidr on CR pixels: {np.mean(crmask[sig] == flagged[sig]) * 100:.1f}%; "
              f"pixels flagged by astroscrappy not by minidr (grown mask): {(crmask & ~flagged).sum()}, "
              f"minidr seeds not astroscrappy: {(flagged & ~crmask & sig).sum()}")

    if not args.no_compile:
        cold, warm = cold_compile_seconds()
        print(f"numba: first ISR call in a fresh process {cold:.1f} s with an empty cache "
              f"(compile), {warm:.1f} s with the cache filled")


if __name__ == "__main__":
    main()
