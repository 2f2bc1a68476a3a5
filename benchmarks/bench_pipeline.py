"""Whole-chain benchmark: ``minidr run`` against a sep + astropy + scipy reference pipeline.

Both run on the same simulated survey (default 18 frames of 2048x2048: 3 visits x 3 bands x
2 detectors) on this machine; the reference does what a careful astronomer assembles in an
afternoon: per-row overscan and calibration frames in numpy, sep.Background + sep.extract +
sep.sum_circle, a header-WCS offset search and astropy's fit_wcs_from_points, a median zero
point, and association by astropy's match_to_catalog_sky. Prints the wall time of each
stage of both, and minidr's per-stage times from its frame logs.

    python benchmarks/bench_pipeline.py [--visits 3] [--bands gri] [--detectors 2] [--size 2048] [--jobs 2]
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def reference_pipeline(survey: Path) -> dict:
    """sep + astropy + scipy on the same raws; returns seconds per stage and counts."""
    import astropy.units as u
    import pandas as pd
    import sep
    from astropy.coordinates import SkyCoord
    from astropy.io import fits
    from astropy.wcs import WCS
    from astropy.wcs.utils import fit_wcs_from_points

    t = {"calibs": 0.0, "isr": 0.0, "detect": 0.0, "calibrate": 0.0, "associate": 0.0}

    def assemble(path):
        with fits.open(path) as hdul:
            prim = hdul[0].header
            amps = [h for h in hdul if h.data is not None]
            det = np.zeros((0, 0))
            pieces = []
            for h in amps:
                hd = h.header
                d = h.data.astype(np.float32)

                def sec(s):
                    (x1, x2), (y1, y2) = [tuple(int(v) for v in p.split(":")) for p in s.strip("[]").split(",")]
                    return x1, x2, y1, y2

                bx1, bx2, by1, by2 = sec(hd["BIASSEC"])
                dx1, dx2, dy1, dy2 = sec(hd.get("DATASEC", hd.get("TRIMSEC")))
                ox1, ox2, oy1, oy2 = sec(hd["DETSEC"])
                over = np.median(d[by1 - 1:by2, bx1 - 1:bx2], axis=1)
                data = (d[dy1 - 1:dy2, dx1 - 1:dx2] - over[dy1 - 1:dy2, None]) * hd["GAIN"]
                if ox1 > ox2:
                    data = data[:, ::-1]
                    ox1, ox2 = ox2, ox1
                if oy1 > oy2:
                    data = data[::-1]
                    oy1, oy2 = oy2, oy1
                pieces.append((oy1 - 1, oy2, ox1 - 1, ox2, data))
            ny = max(p[1] for p in pieces)
            nx = max(p[3] for p in pieces)
            det = np.zeros((ny, nx), np.float32)
            for y0, y1, x0, x1, data in pieces:
                det[y0:y1, x0:x1] = data
            return prim, det

    raws = sorted(glob.glob(str(survey / "raw" / "*" / "*.fits*")))
    kinds: dict = {}
    for p in raws:
        h = fits.getheader(p)
        kinds.setdefault((str(h["IMAGETYP"]).lower(), int(h.get("DETECTOR", h.get("CCDNUM"))),
                          str(h.get("FILTER", ""))), []).append(p)

    t0 = time.perf_counter()
    bias, flat = {}, {}
    for (kind, det, band), paths in kinds.items():
        if kind in ("bias", "zero"):
            bias[det] = np.median([assemble(p)[1] for p in paths], axis=0)
    for (kind, det, band), paths in kinds.items():
        if kind == "flat":
            f = np.median([assemble(p)[1] - bias[det] for p in paths], axis=0)
            flat[(det, band)] = f / np.median(f)
    t["calibs"] = time.perf_counter() - t0

    ref = pd.read_parquet(survey / "refcat.parquet")
    refc = SkyCoord(ref["ra"].to_numpy() * u.deg, ref["dec"].to_numpy() * u.deg)
    catalogs = []
    for (kind, det, band), paths in sorted(kinds.items()):
        if kind not in ("object", "science"):
            continue
        for p in paths:
            t0 = time.perf_counter()
            prim, img = assemble(p)
            img = ((img - bias[det]) / flat[(det, band)]).astype(np.float32)
            t["isr"] += time.perf_counter() - t0

            t0 = time.perf_counter()
            bkg = sep.Background(img)
            sub = img - bkg.back()
            objs = sep.extract(sub, 1.5, err=bkg.globalrms, minarea=5)
            flux, fluxerr, _ = sep.sum_circle(sub, objs["x"], objs["y"], 5.0, err=bkg.globalrms)
            t["detect"] += time.perf_counter() - t0

            t0 = time.perf_counter()
            wcs = WCS(prim)
            bright = np.argsort(-flux)[:60]
            ra, dec = wcs.all_pix2world(objs["x"][bright], objs["y"][bright], 0)
            sc = SkyCoord(ra * u.deg, dec * u.deg)
            # offset search: histogram of offsets to every reference star within 40 arcsec
            idx_s, idx_r, _, _ = refc.search_around_sky(sc, 40 * u.arcsec)
            dra = ((refc.ra[idx_r] - sc.ra[idx_s]).wrap_at(180 * u.deg).arcsec * np.cos(np.radians(dec.mean())))
            ddec = (refc.dec[idx_r] - sc.dec[idx_s]).arcsec
            h, xe, ye = np.histogram2d(dra, ddec, bins=80, range=[[-40, 40], [-40, 40]])
            i, j = np.unravel_index(np.argmax(h), h.shape)
            off = (xe[i] + 0.5, ye[j] + 0.5)
            ra_all, dec_all = wcs.all_pix2world(objs["x"], objs["y"], 0)
            moved = SkyCoord((ra_all + off[0] / 3600 / np.cos(np.radians(dec_all))) * u.deg,
                             (dec_all + off[1] / 3600) * u.deg)
            idx, sep2d, _ = moved.match_to_catalog_sky(refc)
            ok = sep2d.arcsec < 2.0
            if ok.sum() >= 6:
                wcs = fit_wcs_from_points((objs["x"][ok], objs["y"][ok]), refc[idx[ok]], projection=wcs)
            ra_all, dec_all = wcs.all_pix2world(objs["x"], objs["y"], 0)
            mags = ref[f"{band}_mag"].to_numpy()[idx[ok]]
            zp = np.nanmedian(mags + 2.5 * np.log10(np.clip(flux[ok], 1e-9, None)))
            t["calibrate"] += time.perf_counter() - t0
            catalogs.append((ra_all, dec_all, flux * 10 ** ((31.4 - zp) / 2.5)))

    t0 = time.perf_counter()
    obj_ra = np.zeros(0)
    obj_dec = np.zeros(0)
    for ra, dec, _ in catalogs:
        if len(obj_ra) == 0:
            obj_ra, obj_dec = ra, dec
            continue
        idx, sep2d, _ = SkyCoord(ra * u.deg, dec * u.deg).match_to_catalog_sky(SkyCoord(obj_ra * u.deg, obj_dec * u.deg))
        new = sep2d.arcsec > 1.0
        obj_ra = np.r_[obj_ra, ra[new]]
        obj_dec = np.r_[obj_dec, dec[new]]
    t["associate"] = time.perf_counter() - t0
    t["total"] = sum(t.values())
    t["sources"] = int(sum(len(c[0]) for c in catalogs))
    t["objects"] = int(len(obj_ra))
    return t


def minidr_pipeline(survey: Path, work: Path, jobs: int) -> dict:
    from minidr import pipeline
    from minidr.repository import Repo

    repo = Repo.create(work / "repo")
    t0 = time.perf_counter()
    repo.ingest([survey / "raw"], refcat=survey / "refcat.parquet")
    t = {"ingest": time.perf_counter() - t0}
    for rep in pipeline.run(repo, "DR1", jobs=jobs):
        t[rep.stage] = rep.seconds
        if rep.stage == "process":
            t["process_by_step_cpu"] = {k: round(v, 2) for k, v in rep.details.get("timings", {}).items()}
    t["total"] = sum(v for k, v in t.items() if isinstance(v, float))
    return t


def process_cold(survey: Path, work: Path, calibs: Path, jobs: int) -> dict:
    """``minidr process REPO --jobs N`` as a user runs it: a fresh Python process (imports and
    numba cache loads included, in each worker too) on the survey's science frames with the
    calibrations copied. Returns its wall seconds, the CPU seconds of it and its workers, and
    the per-step CPU seconds summed from the frame logs."""
    import json
    import resource
    import subprocess
    import sys

    from minidr.repository import Repo

    repo = Repo.create(work)
    repo.ingest([survey / "raw" / "science"], refcat=survey / "refcat.parquet")
    shutil.copytree(calibs, repo.path / "calibs")
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "minidr", "process", str(repo.path), "--jobs", str(jobs), "--quiet"],
                   check=True)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    steps: dict[str, float] = {}
    for log in sorted((repo.path / "processed").rglob("log.txt")):
        for k, v in json.loads(log.read_text())["timings"].items():
            steps[k] = steps.get(k, 0.0) + v
    return {"wall": wall, "cpu": (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime),
            "steps": {k: round(v, 1) for k, v in steps.items()}}


_WORKER_MEMORY = """
import json, pickle, resource, sys

def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))

from minidr import pipeline  # what a worker imports before its first frame
from minidr._jit import set_threads
import minidr.isr, minidr.process, minidr.raw.reader, minidr.repo.store
set_threads(1)
tasks = pickle.load(open(sys.argv[1], "rb"))
after_imports = rss()
pipeline.process_frame(tasks[0])
after_first = rss()
for task in tasks[1:]:
    pipeline.process_frame(task)
print(json.dumps({"after_imports": after_imports, "after_first": after_first,
                  "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def worker_memory(repo_path: Path, n: int = 3) -> dict:
    """Resident memory of a fresh worker-like process (one numba thread) that processes ``n``
    frames again: after its imports, after the first frame (numba code loaded) and its peak, bytes."""
    import json
    import pickle
    import subprocess
    import sys

    from minidr import pipeline
    from minidr.plugins import processing_fingerprint
    from minidr.repository import Repo

    repo = Repo(repo_path)
    fp = processing_fingerprint(repo.config, [])
    tasks = [pipeline.FrameTask(str(repo.path), info, repo.config.to_dict(), fp)
             for info in repo.registry.raws(imagetyp="science")[:n]]
    pk = repo_path.parent / "worker_tasks.pkl"
    pk.write_bytes(pickle.dumps(tasks))
    out = subprocess.run([sys.executable, "-c", _WORKER_MEMORY, str(pk)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def frame_peak_memory(repo_path: Path) -> int:
    """Peak bytes allocated (numpy arrays included; tracemalloc) while one frame is processed
    again in this process: the frame's working memory, without the interpreter and libraries."""
    import tracemalloc

    from minidr import pipeline
    from minidr.plugins import processing_fingerprint
    from minidr.repository import Repo

    repo = Repo(repo_path)
    info = repo.registry.raws(imagetyp="science")[0]
    task = pipeline.FrameTask(str(repo.path), info, repo.config.to_dict(),
                              processing_fingerprint(repo.config, []))
    pipeline.process_frame(task)  # numba kernels loaded before measuring
    tracemalloc.start()
    pipeline.process_frame(task)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def raw_frame_bytes(survey: Path) -> int:
    """In-memory size of one raw science frame: every HDU's pixels at their BITPIX."""
    from astropy.io import fits

    path = sorted((survey / "raw" / "science").iterdir())[0]
    with fits.open(path) as hdul:
        return sum(abs(h.header.get("ZBITPIX", h.header["BITPIX"])) // 8 * h.header.get("ZNAXIS1", h.header.get("NAXIS1", 0))
                   * h.header.get("ZNAXIS2", h.header.get("NAXIS2", 0)) for h in hdul if h.header.get("NAXIS", 0) or "ZNAXIS1" in h.header)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--visits", type=int, default=3)
    ap.add_argument("--bands", default="gri")
    ap.add_argument("--detectors", type=int, default=2)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--keep", default=None, help="keep the survey and repository in this folder")
    a = ap.parse_args(argv)
    from minidr.simulate import simulate

    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="minidr-bench-"))
    survey = work / "survey"
    if not (survey / "refcat.parquet").exists():
        simulate(survey, visits=a.visits, detectors=a.detectors, bands=a.bands, size=a.size, seed=11)
    n_frames = a.visits * len(a.bands) * a.detectors
    # warm numba's cache on a tiny survey so that compilation is reported apart
    warm = work / "warm"
    t0 = time.perf_counter()
    simulate(warm / "survey", visits=1, detectors=1, bands=a.bands[:1], size=1024, seed=3)
    minidr_pipeline(warm / "survey", warm, 1)
    compile_s = time.perf_counter() - t0
    ours = minidr_pipeline(survey, work, a.jobs)
    cold = {}
    if a.jobs > 1:
        load0 = os.getloadavg()[0]
        for jobs in (1, a.jobs):
            cold[jobs] = process_cold(survey, work / f"cold{jobs}", work / "repo" / "calibs", jobs)
    ref = reference_pipeline(survey)
    print(f"survey: {n_frames} frames of {a.size}x{a.size}, {len(a.bands)} bands; minidr --jobs {a.jobs}")
    print(f"numba warm-up (compile or load cache, tiny survey): {compile_s:.1f} s")
    print("")
    print("| stage | minidr [s] | sep+astropy reference [s] |")
    print("|---|---|---|")
    pairs = [("calibs", "calibs"), ("process", None), ("  isr", "isr"), ("  detect+measure", "detect"),
             ("  calibrate", "calibrate"), ("associate (+forced)", "associate"), ("release", None)]
    for label, rk in pairs:
        key = label.strip().split()[0]
        mine = ours.get(key)
        mine_s = f"{mine:.1f}" if isinstance(mine, float) else ""
        print(f"| {label} | {mine_s} | {ref[rk]:.1f} |" if rk else f"| {label} | {mine_s} | |")
    print(f"| total | {ours['total']:.1f} | {ref['total']:.1f} |")
    print("")
    print(f"speed-up of the whole chain: {ref['total'] / ours['total']:.2f}x")
    print(f"minidr process, CPU seconds per step summed over frames (frame logs): {ours.get('process_by_step_cpu')}")
    print(f"reference: {ref['sources']} sources, {ref['objects']} objects (no forced photometry, no release)")
    if cold:
        print("")
        print(f"`minidr process --jobs N` from a fresh Python (imports, numba cache loads, worker start-up "
              f"included; load average before: {load0:.1f}):")
        print("| jobs | wall [s] | CPU [s] | CPU per frame [s] | per-step CPU [s] |")
        print("|---|---|---|---|---|")
        for jobs, c in cold.items():
            print(f"| {jobs} | {c['wall']:.1f} | {c['cpu']:.1f} | {c['cpu'] / n_frames:.2f} | {c['steps']} |")
        j1, jn = cold[1]["wall"], cold[a.jobs]["wall"]
        print(f"scaling --jobs {a.jobs} / --jobs 1: {j1 / jn:.2f}x (target >= 1.8x for 2 jobs; --jobs 1 runs the "
              f"parallel numba kernels on all cores, each of the {a.jobs} workers on one)")
    raw_b = raw_frame_bytes(survey)
    frame_b = frame_peak_memory(work / "repo")
    print(f"working memory of one frame (tracemalloc peak): {frame_b / 2**20:.0f} MiB = {frame_b / raw_b:.1f}x the raw "
          f"frame ({raw_b / 2**20:.1f} MiB; target < 10x)")
    mem = worker_memory(work / "repo")
    print(f"resident memory of a worker: {mem['after_imports'] / 2**20:.0f} MiB after its imports, "
          f"{mem['after_first'] / 2**20:.0f} MiB after its first frame (numba code loaded), peak over 3 frames "
          f"{mem['peak'] / 2**20:.0f} MiB = imports + {(mem['peak'] - mem['after_imports']) / 2**20:.0f} MiB "
          f"({(mem['peak'] - mem['after_imports']) / raw_b:.0f}x the raw frame)")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
