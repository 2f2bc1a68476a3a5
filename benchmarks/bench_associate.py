"""Association speed: minidr vs scipy cKDTree vs lsdb crossmatch on the same synthetic sources.

Usage::

    .venv/bin/python benchmarks/bench_associate.py                 # 1M and 5M sources
    .venv/bin/python benchmarks/bench_associate.py --sizes 200000  # quick
    .venv/bin/python benchmarks/bench_associate.py --no-lsdb

Each size runs in its own subprocess so that peak RSS (``ru_maxrss``) belongs to that size.
Synthetic survey: stars uniform over a square field (density ~70 000 deg^-2, none closer than
the association radius), 15 visits, each star detected with probability 0.95, astrometric
noise 10-50 mas, frames = 4 detectors (quadrants) per visit.

Operations timed (same inputs for all tools):

* ``associate``: minidr.associate.associate, the whole thing (FoF + per-frame matching + ids
  + Object statistics);
* ``nn``: nearest Object within 1 arcsec of every Source (the Object list from ``associate``):
  minidr zones sort + numba sweep vs cKDTree build + query on unit vectors vs lsdb
  ``from_dataframe`` (both catalogs, margin) + ``crossmatch(n_neighbors=1)`` + compute.
  Match sets must be identical;
* ``fof``: friends-of-friends components at 1 arcsec: ``minidr.associate.link`` vs cKDTree
  build + ``query_pairs`` + ``scipy.sparse.csgraph.connected_components``; identical partitions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa

N_VISITS = 15
DENSITY = 70_000.0  # stars per deg^2
RADIUS = 1.0  # arcsec


def make_sources(n_sources: int, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    n_star = int(n_sources / (N_VISITS * 0.95))
    side = np.sqrt(n_star / DENSITY)  # deg
    ra0, dec0 = 150.0, 2.0
    ra_t = ra0 + rng.uniform(-side / 2, side / 2, n_star) / np.cos(np.radians(dec0))
    dec_t = dec0 + rng.uniform(-side / 2, side / 2, n_star)
    cols = {k: [] for k in ("sourceId", "ccdVisitId", "band", "midpointMjdTai", "ra", "dec", "raErr",
                            "decErr", "psfFlux", "psfFluxErr", "flags", "extendedness", "snr")}
    for v in range(N_VISITS):
        det = rng.random(n_star) < 0.95
        idx = np.flatnonzero(det)
        k = idx.size
        quad = (ra_t[idx] > ra0).astype(np.int64) + 2 * (dec_t[idx] > dec0)
        sig = rng.uniform(10, 50, k) / 3.6e6
        cv = (1000 + v) * 1000 + quad
        order = np.lexsort((rng.random(k), cv))
        idx, quad, sig, cv = idx[order], quad[order], sig[order], cv[order]
        starts = np.searchsorted(cv, cv, side="left")
        cols["sourceId"].append(cv * 100_000 + (np.arange(k) - starts))
        cols["ccdVisitId"].append(cv)
        cols["band"].append(np.full(k, "gri"[v % 3]))
        cols["midpointMjdTai"].append(np.full(k, 60000.0 + v))
        cols["ra"].append(ra_t[idx] + rng.normal(0, 1, k) * sig / np.cos(np.radians(dec_t[idx])))
        cols["dec"].append(dec_t[idx] + rng.normal(0, 1, k) * sig)
        cols["raErr"].append(sig)
        cols["decErr"].append(sig)
        f = rng.uniform(1e3, 1e5, k)
        cols["psfFlux"].append(f)
        cols["psfFluxErr"].append(np.sqrt(f))
        cols["flags"].append(np.zeros(k, np.int32))
        cols["extendedness"].append(np.zeros(k))
        cols["snr"].append(np.sqrt(f))
    return pa.table({k: np.concatenate(v) for k, v in cols.items()})


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _unit(ra, dec):
    ra, dec = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], -1)


def run_one(n: int, with_lsdb: bool) -> dict:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    from minidr.associate import associate, kernels, link
    from minidr.associate.associate import _unit_vectors, zone_sort
    from minidr.config import AssociationConfig

    out = {"n_sources": n}
    # warm the numba caches on a tiny input (compile time is not what we measure)
    warm = associate(make_sources(2000, seed=9), ["g", "r", "i"], AssociationConfig()).objects
    _wo, wras, wz, wzs = zone_sort(warm["coord_ra"].to_numpy(), warm["coord_dec"].to_numpy(), RADIUS / 3600)
    kernels.nearest_within(wz, wzs, wras, wras, wras, wras, wras[:5], wras[:5], RADIUS / 3600, RADIUS / 3600)

    t = make_sources(n)
    out["n_sources"] = t.num_rows
    rss0 = _maxrss_mb()
    c0 = time.process_time()
    t0 = time.perf_counter()
    res = associate(t, ["g", "r", "i"], AssociationConfig())
    out["associate_s"] = time.perf_counter() - t0
    out["associate_cpu_s"] = time.process_time() - c0
    out["n_objects"] = res.n_objects
    out["rss_before_mb"] = rss0
    out["rss_peak_associate_mb"] = _maxrss_mb()

    ra = t.column("ra").to_numpy()
    dec = t.column("dec").to_numpy()
    ora = res.objects.column("coord_ra").to_numpy()
    odec = res.objects.column("coord_dec").to_numpy()
    r_deg = RADIUS / 3600.0
    chord = 2 * np.sin(np.radians(r_deg) / 2)

    # --- nn: every source -> nearest object within 1 arcsec --------------------------
    kernels.nearest_within(wz[:0], wzs[:1], wras[:0], wras[:0], wras[:0], wras[:0], ra[:5], dec[:5],
                           r_deg, r_deg)  # compile for read-only (Arrow) query arrays
    c0 = time.process_time()
    t0 = time.perf_counter()
    order, ras, zone_ids, zone_start = zone_sort(ora, odec, r_deg)
    ox, oy, oz = _unit_vectors(ora[order], odec[order])
    best, _ = kernels.nearest_within(zone_ids, zone_start, ras, ox, oy, oz, ra, dec, r_deg, r_deg)
    m_minidr = np.where(best >= 0, order[np.maximum(best, 0)], -1)
    out["nn_minidr_s"] = time.perf_counter() - t0
    out["nn_minidr_cpu_s"] = time.process_time() - c0

    c0 = time.process_time()
    t0 = time.perf_counter()
    tree = cKDTree(_unit(ora, odec))
    d, j = tree.query(_unit(ra, dec), k=1, distance_upper_bound=chord, workers=-1)
    m_kd = np.where(np.isfinite(d), j, -1)
    out["nn_ckdtree_s"] = time.perf_counter() - t0
    out["nn_ckdtree_cpu_s"] = time.process_time() - c0
    out["nn_matches"] = int(np.sum(m_minidr >= 0))
    out["nn_identical_ckdtree"] = bool(np.array_equal(m_minidr, m_kd))
    out["nn_differences_ckdtree"] = int(np.sum(m_minidr != m_kd))

    if with_lsdb:
        import lsdb
        import pandas as pd

        sdf = pd.DataFrame({"sid": np.arange(ra.size), "ra": ra, "dec": dec})
        odf = pd.DataFrame({"oid": np.arange(ora.size), "ra": ora, "dec": odec})
        c0 = time.process_time()
        t0 = time.perf_counter()
        rows = max(ra.size // 16, 50_000)  # few, large partitions: least dask overhead
        sc = lsdb.from_dataframe(sdf, ra_column="ra", dec_column="dec", partition_rows=rows, highest_order=10)
        oc = lsdb.from_dataframe(odf, ra_column="ra", dec_column="dec", margin_threshold=2 * RADIUS,
                                 partition_rows=rows, highest_order=10)
        out["nn_lsdb_build_s"] = time.perf_counter() - t0
        xm = sc.crossmatch(oc, n_neighbors=1, radius_arcsec=RADIUS, suffixes=("_s", "_o")).compute()
        out["nn_lsdb_s"] = time.perf_counter() - t0
        out["nn_lsdb_cpu_s"] = time.process_time() - c0  # dask worker threads included
        m_lsdb = np.full(ra.size, -1, np.int64)
        m_lsdb[xm["sid_s"].to_numpy()] = xm["oid_o"].to_numpy()
        out["nn_identical_lsdb"] = bool(np.array_equal(m_minidr, m_lsdb))
        out["nn_differences_lsdb"] = int(np.sum(m_minidr != m_lsdb))
        del sc, oc, xm, sdf, odf

    # --- fof: components within 1 arcsec -------------------------------------------
    c0 = time.process_time()
    t0 = time.perf_counter()
    lab = link(ra, dec, RADIUS)
    out["fof_minidr_s"] = time.perf_counter() - t0
    out["fof_minidr_cpu_s"] = time.process_time() - c0
    c0 = time.process_time()
    t0 = time.perf_counter()
    tree = cKDTree(_unit(ra, dec))
    pairs = tree.query_pairs(chord, output_type="ndarray")
    g = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(ra.size, ra.size))
    ncomp, lab_kd = connected_components(g, directed=False)
    out["fof_ckdtree_s"] = time.perf_counter() - t0
    out["fof_ckdtree_cpu_s"] = time.process_time() - c0
    out["fof_pairs"] = len(pairs)
    # same partition: a bijection between labels
    _, li = np.unique(lab, return_inverse=True)
    comb = np.unique(np.stack([li, lab_kd], 1), axis=0)
    out["fof_identical_ckdtree"] = bool(comb.shape[0] == ncomp == li.max() + 1)
    out["rss_peak_end_mb"] = _maxrss_mb()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000000,5000000")
    ap.add_argument("--no-lsdb", action="store_true")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, not args.no_lsdb)))
        return
    import numba

    print(f"# {platform.node()} {platform.processor() or platform.machine()} cores={os.cpu_count()} "
          f"numba_threads={numba.config.NUMBA_NUM_THREADS} python={platform.python_version()} "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    for n in (int(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--one", str(n)] + (["--no-lsdb"] if args.no_lsdb else [])
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode:
            print(res.stderr, file=sys.stderr)
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(json.dumps(r))
        line = (f"n={r['n_sources']:,} objects={r['n_objects']:,} associate={r['associate_s']:.2f}s "
                f"(cpu {r['associate_cpu_s']:.2f}s) "
                f"peakRSS={r['rss_peak_associate_mb']:.0f}MB (data {r['rss_before_mb']:.0f}MB) | "
                f"nn wall/cpu: minidr {r['nn_minidr_s']:.2f}/{r['nn_minidr_cpu_s']:.2f}s "
                f"cKDTree {r['nn_ckdtree_s']:.2f}/{r['nn_ckdtree_cpu_s']:.2f}s")
        if "nn_lsdb_s" in r:
            line += (f" lsdb {r['nn_lsdb_s']:.2f}/{r['nn_lsdb_cpu_s']:.2f}s "
                     f"(from_dataframe {r['nn_lsdb_build_s']:.2f}s) identical={r['nn_identical_ckdtree']}/{r['nn_identical_lsdb']}")
        else:
            line += f" identical={r['nn_identical_ckdtree']}"
        line += (f" | fof wall/cpu: minidr {r['fof_minidr_s']:.2f}/{r['fof_minidr_cpu_s']:.2f}s "
                 f"cKDTree+cc {r['fof_ckdtree_s']:.2f}/{r['fof_ckdtree_cpu_s']:.2f}s "
                 f"identical={r['fof_identical_ckdtree']}")
        print(line, flush=True)


if __name__ == "__main__":
    main()
