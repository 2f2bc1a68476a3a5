"""A synthetic release (Object, Source, ForcedSource, Visit, CcdVisit) built through ``minidr import``.

Used by the query tests (a few thousand Objects) and by ``bench_query.py`` (millions).
Positions mix a uniform sky, dense Gaussian clusters and a dense band along the equator
(density varies by > 100x), plus Objects placed on purpose near both poles and on both
sides of RA = 0/360, and close pairs. Everything is seeded.

    python benchmarks/synthetic_release.py OUTDIR [--n 50000000] [--sources 0] [--seed 1]
                                           [--chunk 500000] [--memory-mb 1024]

makes ``OUTDIR`` a minidr repository (if it is not one yet) and writes its release
``OUTDIR/releases/SYN/``. The Object table is generated in chunks of ``--chunk`` rows and
streamed through the importer (:func:`minidr.release.importer.import_batches`), so memory
stays bounded whatever N (the 50-million default peaked at 3.16 GiB resident). Visit and
CcdVisit (and, with ``--sources``, Source and ForcedSource, which are built in memory from
the whole Object table: keep N small with them) are written first by the release writer.
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

BANDS = "gri"


def cluster_centres(rng: np.random.Generator, n: int = 24) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ra, dec, sigma) [deg] of the clusters: a few fixed on awkward places (RA 0, poles),
    the rest random; sigma 0.05-1.5 deg."""
    centres = [(0.2, 10.0), (359.9, -30.0), (45.0, 89.7), (200.0, -89.6)]
    while len(centres) < n:
        centres.append((rng.uniform(0, 360), float(np.degrees(np.arcsin(rng.uniform(-1, 1))))))
    sig = rng.uniform(0.05, 1.5, len(centres))
    return np.array([c[0] for c in centres]), np.array([c[1] for c in centres]), sig


def positions(n: int, rng: np.random.Generator, clusters=None) -> tuple[np.ndarray, np.ndarray]:
    """n positions [deg]: 55% uniform, 30% in 24 clusters (``clusters`` from
    :func:`cluster_centres`, default drawn from ``rng``), 10% equatorial band, 5% edge cases;
    then 2% of them are moved next to another object (close pairs)."""
    n_uni = int(n * 0.55)
    n_clu = int(n * 0.30)
    n_band = int(n * 0.10)
    n_edge = n - n_uni - n_clu - n_band
    ra = [rng.uniform(0, 360, n_uni)]
    dec = [np.degrees(np.arcsin(rng.uniform(-1, 1, n_uni)))]
    cen_ra, cen_dec, cen_sig = clusters if clusters is not None else cluster_centres(rng)
    which = rng.integers(0, cen_ra.size, n_clu)
    sig = cen_sig[which]
    c_ra = cen_ra[which]
    c_dec = cen_dec[which]
    r_ra, r_dec = _offset(c_ra, c_dec, rng.normal(0, 1, n_clu) * sig, rng.normal(0, 1, n_clu) * sig)
    ra.append(r_ra)
    dec.append(r_dec)
    ra.append(rng.uniform(0, 360, n_band))
    dec.append(np.clip(rng.normal(0, 3, n_band), -90, 90))
    # edge cases: within 0.5 deg of the poles, within 0.01 deg of RA 0/360
    k = n_edge // 2
    ra.append(rng.uniform(0, 360, k))
    dec.append(np.where(rng.random(k) < 0.5, 1, -1) * (90 - rng.uniform(0, 0.5, k)))
    m = n_edge - k
    ra.append(np.mod(rng.uniform(-0.01, 0.01, m), 360.0))
    dec.append(rng.uniform(-60, 60, m))
    ra = np.mod(np.concatenate(ra), 360.0)
    dec = np.clip(np.concatenate(dec), -90.0, 90.0)
    # close companions (blends, binaries): 2% of the objects sit 0.3-10 arcsec from another
    n_pair = n // 50
    if n_pair:
        host = rng.integers(0, n - n_pair, n_pair)
        sep = rng.uniform(0.3, 10.0, n_pair) / 3600.0
        ang = rng.uniform(0, 2 * np.pi, n_pair)
        ra[n - n_pair:], dec[n - n_pair:] = _offset(ra[host], dec[host], sep * np.cos(ang), sep * np.sin(ang))
    return ra, dec


def _offset(ra0, dec0, dx_deg, dy_deg):
    """Positions offset by (dx, dy) [deg] in the tangent plane of (ra0, dec0) (gnomonic)."""
    a0, d0 = np.radians(ra0), np.radians(dec0)
    x, y = np.radians(dx_deg), np.radians(dy_deg)
    rho = np.hypot(x, y)
    c = np.arctan(rho)
    with np.errstate(invalid="ignore", divide="ignore"):
        dec = np.arcsin(np.cos(c) * np.sin(d0) + np.where(rho > 0, y * np.sin(c) * np.cos(d0) / rho, 0.0))
        ra = a0 + np.arctan2(x * np.sin(c), rho * np.cos(d0) * np.cos(c) - y * np.sin(d0) * np.sin(c))
    return np.mod(np.degrees(ra), 360.0), np.degrees(dec)


def _id_step(n: int) -> int:
    """A multiplier coprime with ``n`` near 0.618 n: ``(step * i) % n`` shuffles 0..n-1."""
    step = max(1, int(n * 0.6180339887))
    while math.gcd(step, n) != 1:
        step += 1
    return step


def object_batches(n: int, seed: int = 1, bands: str = BANDS, n_detections: int | None = None,
                   chunk: int = 500_000) -> Iterator[pa.Table]:
    """The Object table of ``n`` rows with the SPEC's columns (release schema, units and
    descriptions) in chunks of ``chunk`` rows, generated one at a time: memory does not grow
    with ``n``. Chunk ``k`` is drawn from its own generator seeded ``(seed, k)``, the 24
    cluster centres from ``seed`` once; ``objectId`` is ``1_000_000 + (step * i) % n`` for
    row ``i`` (all distinct, shuffled relative to position). ``n_detections``: the same
    ``nDetections`` for every Object (default: random 1-29)."""
    from minidr.release.schema import conform, schema_for

    schema = schema_for("Object", list(bands))
    clusters = cluster_centres(np.random.default_rng(seed))
    step = _id_step(n)
    for k, start in enumerate(range(0, n, chunk)):
        m = min(chunk, n - start)
        rng = np.random.default_rng([seed, k])
        ra, dec = positions(m, rng, clusters)
        oid = (np.arange(start, start + m, dtype=np.int64) * step) % n + 1_000_000
        ndet = np.full(m, n_detections, dtype=np.int64) if n_detections is not None else rng.integers(1, 30, m)
        yield conform(_object_columns(m, rng, ra, dec, oid, ndet, bands), schema, name="Object")


def object_table(n: int, seed: int = 1, bands: str = BANDS, n_detections: int | None = None) -> pa.Table:
    """All of :func:`object_batches` in one table (small ``n`` only)."""
    return pa.concat_tables(object_batches(n, seed, bands, n_detections))


def _object_columns(n, rng, ra, dec, oid, ndet, bands) -> pa.Table:
    """Object columns of ``n`` rows at ``ra``/``dec`` [deg]: fluxes [nJy] of magnitudes 17-25
    (AB, zero point 31.4), errors, scatter, chi2, epochs [MJD]."""
    cols = {
        "objectId": oid,
        "coord_ra": ra,
        "coord_dec": dec,
        "coord_raErr": rng.uniform(1e-6, 3e-5, n),
        "coord_decErr": rng.uniform(1e-6, 3e-5, n),
        "nDetections": ndet.astype(np.int64),
        "refExtendedness": (rng.random(n) < 0.3).astype(np.float64),
        "firstMjd": 60000 + rng.uniform(0, 100, n),
    }
    cols["lastMjd"] = cols["firstMjd"] + rng.uniform(0, 300, n)
    for b in bands:
        mag = rng.uniform(17, 25, n)
        flux = 10 ** (-0.4 * (mag - 31.4))
        err = flux * rng.uniform(0.005, 0.1, n)
        cols[f"{b}_psfFluxMean"] = flux
        cols[f"{b}_psfFluxMeanErr"] = err
        cols[f"{b}_psfFluxSigma"] = err * rng.uniform(0.5, 2, n)
        cols[f"{b}_psfFluxChi2"] = rng.chisquare(5, n)
        cols[f"{b}_psfFluxNdata"] = rng.integers(0, 10, n).astype(np.int64)
        cols[f"{b}_psfMag"] = -2.5 * np.log10(flux) + 31.4
    return pa.table(cols)


def visit_tables(n_visits: int, n_detectors: int, seed: int = 2, bands: str = BANDS) -> tuple[pa.Table, pa.Table]:
    """Visit and CcdVisit rows."""
    rng = np.random.default_rng(seed)
    visit = np.arange(n_visits, dtype=np.int64) + 1000
    band = np.array([bands[i % len(bands)] for i in range(n_visits)])
    start = 60000 + np.sort(rng.uniform(0, 400, n_visits))
    exp = np.full(n_visits, 30.0)
    v = {
        "visit": visit, "band": band, "ra": rng.uniform(0, 360, n_visits), "dec": rng.uniform(-60, 60, n_visits),
        "obsStartMjd": start, "midpointMjdTai": start + exp / 2 / 86400, "expTime": exp,
        "seeing": rng.uniform(0.6, 1.4, n_visits), "skyBg": rng.uniform(100, 1000, n_visits),
        "skyNoise": rng.uniform(10, 30, n_visits), "zeroPoint": rng.uniform(27, 28.5, n_visits),
        "astromRms": rng.uniform(0.01, 0.05, n_visits), "nDetectors": np.full(n_visits, n_detectors, np.int64),
        "nSources": rng.integers(100, 10000, n_visits).astype(np.int64),
    }
    rows = n_visits * n_detectors
    vi = np.repeat(np.arange(n_visits), n_detectors)
    det = np.tile(np.arange(n_detectors, dtype=np.int32), n_visits)
    c = {
        "ccdVisitId": visit[vi] * 1000 + det, "visit": visit[vi], "detector": det, "band": band[vi],
        "midpointMjdTai": v["midpointMjdTai"][vi], "obsStartMjd": start[vi], "expTime": exp[vi],
        "ra": v["ra"][vi] + rng.normal(0, 0.1, rows), "dec": v["dec"][vi] + rng.normal(0, 0.1, rows),
        "seeing": v["seeing"][vi], "psfFwhm": v["seeing"][vi] / 0.2, "pixelScale": np.full(rows, 0.2),
        "skyBg": v["skyBg"][vi], "skyNoise": v["skyNoise"][vi], "zeroPoint": v["zeroPoint"][vi],
        "astromRms": v["astromRms"][vi], "astromNMatch": rng.integers(10, 200, rows).astype(np.int64),
        "nSources": rng.integers(10, 2000, rows).astype(np.int64),
    }
    return pa.table(v), pa.table(c)


def source_tables(obj: pa.Table, visits: pa.Table, per_object: int, seed: int = 3) -> tuple[pa.Table, pa.Table]:
    """Source (``per_object`` per Object, 0.05 arcsec scatter) and ForcedSource (same count) rows."""
    rng = np.random.default_rng(seed)
    n_obj = obj.num_rows
    k = np.repeat(np.arange(n_obj), per_object)
    obj_ra, obj_dec = obj["coord_ra"].to_numpy(), obj["coord_dec"].to_numpy()
    n = k.size
    nv = visits.num_rows
    vi = rng.integers(0, nv, n)
    vis = visits["visit"].to_numpy()[vi]
    det = rng.integers(0, 4, n).astype(np.int32)
    ccd = vis * 1000 + det
    ra0, dec0 = obj_ra[k], obj_dec[k]
    sra, sdec = _offset(ra0, dec0, rng.normal(0, 0.05 / 3600, n), rng.normal(0, 0.05 / 3600, n))
    band = visits["band"].to_numpy(zero_copy_only=False)[vi]
    mjd = visits["midpointMjdTai"].to_numpy()[vi]
    flux = obj["g_psfFluxMean"].to_numpy()[k] * rng.normal(1, 0.05, n)
    src = {
        "sourceId": np.arange(n, dtype=np.int64) + 10_000_000, "objectId": obj["objectId"].to_numpy()[k],
        "ccdVisitId": ccd, "visit": vis, "detector": det, "band": band, "midpointMjdTai": mjd,
        "ra": sra, "dec": sdec, "raErr": np.full(n, 1e-5), "decErr": np.full(n, 1e-5),
        "x": rng.uniform(0, 2048, n), "y": rng.uniform(0, 4096, n), "xErr": np.full(n, 0.01),
        "yErr": np.full(n, 0.01), "psfFlux": flux, "psfFluxErr": flux * 0.02, "apFlux": flux * 1.02,
        "apFluxErr": flux * 0.03, "ixx": np.full(n, 4.0), "iyy": np.full(n, 4.0), "ixy": np.zeros(n),
        "sky": np.full(n, 50.0), "extendedness": np.zeros(n), "snr": np.full(n, 50.0),
        "flags": np.zeros(n, dtype=np.int32),
    }
    fvi = rng.integers(0, nv, n)
    fs = {
        "forcedSourceId": np.arange(n, dtype=np.int64) + 90_000_000, "objectId": obj["objectId"].to_numpy()[k],
        "ccdVisitId": visits["visit"].to_numpy()[fvi] * 1000 + 1, "visit": visits["visit"].to_numpy()[fvi],
        "band": visits["band"].to_numpy(zero_copy_only=False)[fvi],
        "midpointMjdTai": visits["midpointMjdTai"].to_numpy()[fvi],
        "psfFlux": flux * rng.normal(1, 0.05, n), "psfFluxErr": flux * 0.03,
        "coord_ra": obj_ra[k], "coord_dec": obj_dec[k],  # the Object's position (partitioning)
    }
    return pa.table(src), pa.table(fs)


def build_release(out_dir, n_objects: int, *, name: str = "SYN", seed: int = 1, sources_per_object: int = 2,
                  partition_rows: int = 500_000, row_group_rows: int = 20_000, n_visits: int = 30,
                  n_detectors: int = 4, chunk: int = 500_000, memory_budget: int = 1 << 30,
                  progress=None) -> Path:
    """Write a synthetic release at ``out_dir/releases/NAME`` and return its path.

    ``out_dir`` becomes a minidr repository if it is not one (it must then be new or empty).
    Visit, CcdVisit and, when ``sources_per_object`` > 0, Source and ForcedSource are written
    first by the release writer; then the Object table is streamed chunk by chunk into that
    release by the importer, with ``memory_budget`` bytes of rows held in memory at most."""
    from minidr.release.importer import import_batches
    from minidr.release.writer import write_release
    from minidr.repo.layout import config_path
    from minidr.repo.registry import Registry
    from minidr.repository import Repo

    out_dir = Path(out_dir)
    if not config_path(out_dir).is_file():
        Repo.create(out_dir)
    ndet = sources_per_object if sources_per_object else None
    visits, ccd = visit_tables(n_visits, n_detectors, seed=seed + 1)
    catalogs = {}
    if sources_per_object:
        src, fs = source_tables(object_table(n_objects, seed=seed, n_detections=ndet), visits,
                                sources_per_object, seed=seed + 2)
        catalogs["Source"] = (src, "ra", "dec")
        catalogs["ForcedSource"] = (fs, "coord_ra", "coord_dec")
        del src, fs
    path = write_release(
        out_dir / "releases" / name, catalogs=catalogs, tables={"Visit": visits, "CcdVisit": ccd},
        manifest={"software": "benchmarks/synthetic_release.py", "seed": seed, "n_objects": n_objects},
        partition_rows=partition_rows, row_group_rows=row_group_rows,
    )
    catalogs.clear()
    import_batches(out_dir, name, "Object", object_batches(n_objects, seed=seed, n_detections=ndet, chunk=chunk),
                   ra="coord_ra", dec="coord_dec", id_column="objectId", partition_rows=partition_rows,
                   row_group_rows=row_group_rows, memory_budget=memory_budget, total_rows=n_objects,
                   progress=progress)
    Registry(out_dir).record_release(name, str(path), n_objects, n_objects * sources_per_object)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir")
    ap.add_argument("--n", type=int, default=50_000_000, help="number of Objects")
    ap.add_argument("--sources", type=int, default=0, help="Sources (and ForcedSources) per Object")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--name", default="SYN")
    ap.add_argument("--partition-rows", type=int, default=500_000)
    ap.add_argument("--chunk", type=int, default=500_000, help="Objects generated at a time")
    ap.add_argument("--memory-mb", type=int, default=1024, help="rows held in memory by the importer [MiB]")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    last = [""]

    def progress(stage: str, fraction: float) -> None:
        line = f"{stage} {100 * fraction:3.0f}%"
        if line != last[0] and sys.stderr.isatty():
            print(f"\r{line}  {time.perf_counter() - t0:6.0f} s", end="", file=sys.stderr, flush=True)
        last[0] = line

    path = build_release(a.outdir, a.n, name=a.name, seed=a.seed, sources_per_object=a.sources,
                         partition_rows=a.partition_rows, chunk=a.chunk, memory_budget=a.memory_mb << 20,
                         progress=progress)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"\nwrote {path} ({a.n} Objects) in {time.perf_counter() - t0:.1f} s, peak RSS {rss:.2f} GiB",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
