"""The only orchestrator: read through the repository, call each stage's pure ``run``,
write through the repository. Every stage is resumable (outputs are written to a temporary
name and renamed; a stage skips the units whose outputs exist) and deterministic (the
same inputs and config give the same bytes whatever ``jobs`` is).

Stages: :func:`make_calibs` -> :func:`process` -> :func:`associate` -> :func:`publish`;
:func:`run` chains them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__
from ._io import atomic_path, remove_stale_temporaries, sha256_file
from ._memory import trim_heap
from .config import Config, from_dict
from .errors import InputError, MinidrError, ReleaseError, RepoError
from .products import RawInfo, ccd_visit_id
from .repo import layout

BAND_ORDER = "ugrizy"
FORCED_ID_FACTOR = 10_000_000
"""``forcedSourceId = ccdVisitId * 10**7 + n``, n the row of the object in the frame's forced list."""


@dataclass
class StageReport:
    """What one stage did: units done now, skipped (already done), failed (with messages)."""

    stage: str
    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    details: dict = field(default_factory=dict)

    def summary(self) -> str:
        text = f"{self.stage}: {self.done} done, {self.skipped} already done, {len(self.failed)} failed ({self.seconds:.1f} s)"
        return text


@contextlib.contextmanager
def _no_progress(total: int, label: str, quiet: bool = False):
    yield lambda n=1: None


def _band_key(band: str):
    return (BAND_ORDER.index(band) if band in BAND_ORDER else len(BAND_ORDER), band)


# --- executors ------------------------------------------------------------------------------


def _init_worker(threads: int) -> None:
    from ._jit import set_threads

    set_threads(threads)


class _InlineExecutor:
    """Runs tasks in this process, one after the other (jobs=1)."""

    def submit(self, fn, *args):
        fut = Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - delivered through the future
            fut.set_exception(exc)
        return fut

    def shutdown(self, cancel_futures=False):
        pass


@contextlib.contextmanager
def make_executor(jobs: int = 1, executor: str = "local"):
    """A concurrent.futures-style executor: inline (jobs=1), a process pool, or Dask.

    ``executor`` is ``local`` or ``dask://HOST:PORT`` (a running ``distributed`` scheduler).
    Yields ``(submit, as_completed)``.
    """
    if executor.startswith("dask://") or executor.startswith("tcp://"):
        try:
            from distributed import Client
            from distributed import as_completed as dask_as_completed
        except ImportError:  # pragma: no cover
            raise MinidrError("the dask executor needs the 'distributed' package") from None
        address = "tcp://" + executor.split("://", 1)[1]
        try:
            client = Client(address, timeout=10)
        except OSError as exc:
            raise MinidrError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        try:
            yield client.submit, dask_as_completed
        finally:
            client.close()
        return
    if executor != "local":
        raise MinidrError(f"unknown executor {executor!r}: use 'local' or 'dask://HOST:PORT'")
    if jobs <= 1:
        yield _InlineExecutor().submit, as_completed
        return
    import multiprocessing as mp

    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"),
                               initializer=_init_worker, initargs=(1,))
    try:
        yield pool.submit, as_completed
    except BaseException:
        pool.shutdown(cancel_futures=True)
        raise
    else:
        pool.shutdown()


# --- calibrations ---------------------------------------------------------------------------


def make_calibs(repo, progress=_no_progress, quiet: bool = False, jobs: int = 1, executor: str = "local",
                pool=None) -> StageReport:
    """Build the master bias, dark (per detector) and flat (per detector and band).

    The masters of one kind are built in parallel (``jobs`` workers, or the ``pool`` that
    :func:`make_executor` yielded); darks after biases, flats after both. Each master is
    the same whatever ``jobs`` is."""
    t0 = time.perf_counter()
    cfg = repo.config
    reg = repo.registry
    report = StageReport("calibs")
    remove_stale_temporaries(repo.path / "calibs")
    raws = reg.raws()
    detectors = sorted({r.detector for r in raws if r.imagetyp == "science"} | {r.detector for r in raws if r.imagetyp != "science"})
    bands = sorted({r.band for r in raws if r.imagetyp in ("science", "flat") and r.band}, key=_band_key)
    todo = []
    for det in detectors:
        todo.append(("bias", det, None))
        todo.append(("dark", det, None))
        for band in bands:
            todo.append(("flat", det, band))
    with progress(len(todo), "calibs", quiet) as advance, \
            (contextlib.nullcontext(pool) if pool is not None else make_executor(jobs, executor)) as (submit, completed):
        for phase in ("bias", "dark", "flat"):
            futures = {}
            for kind, det, band in todo:
                if kind != phase:
                    continue
                label = f"{kind} det{det}" + (f" {band}" if band else "")
                path = layout.calib_path(repo.path, kind, det, band)
                inputs = [r.path for r in raws if r.imagetyp == kind and r.detector == det and (kind != "flat" or r.band == band)]
                if path.exists():
                    report.skipped += 1
                    advance()
                elif not inputs:
                    if kind != "dark":  # darks are optional
                        report.failed.append((label, f"no raw {kind} frames ingested"))
                    advance()
                else:
                    fut = submit(build_master, str(repo.path), kind, det, band, inputs, cfg.to_dict())
                    futures[fut] = (kind, det, band, label, inputs)
            for fut in completed(list(futures)):
                kind, det, band, label, inputs = futures[fut]
                error = fut.result()
                if error:
                    report.failed.append((label, error))
                else:
                    reg.record_calib(kind, det, band, str(layout.calib_path(repo.path, kind, det, band)), inputs)
                    report.done += 1
                advance()
    report.seconds = time.perf_counter() - t0
    return report


def build_master(repo: str, kind: str, detector: int, band: str | None, inputs: list[str], config: dict) -> str:
    """Build and write one master calibration from the raw frames ``inputs`` (runs in workers);
    the bias (and dark) of the detector must exist already. Returns "" or the error message."""
    from .calib import master_bias, master_dark, master_flat
    from .raw.reader import read_raw
    from .repo.store import read_master, write_master

    repo = Path(repo)
    cfg = from_dict(config)
    try:
        frames = [read_raw(p) for p in inputs]
        if kind == "bias":
            master = master_bias(frames, cfg)
        elif kind == "dark":
            master = master_dark(frames, read_master(layout.calib_path(repo, "bias", detector)), cfg)
        else:
            bias = read_master(layout.calib_path(repo, "bias", detector))
            dpath = layout.calib_path(repo, "dark", detector)
            dark = read_master(dpath) if dpath.exists() else None
            master = master_flat(frames, bias, dark, cfg)
    except (MinidrError, FileNotFoundError) as exc:
        return str(exc)
    del frames
    write_master(layout.calib_path(repo, kind, detector, band), master)
    return ""


# --- single-frame processing ----------------------------------------------------------------


@dataclass(frozen=True)
class FrameTask:
    """Everything a worker needs to process one frame (picklable)."""

    repo: str
    info: RawInfo
    config: dict
    fingerprint: str = ""   #: processing_fingerprint of config + plug-ins (stored with the outputs)


@lru_cache(maxsize=4)
def _load_refcat(path: str, mtime: float) -> pa.Table:
    return pq.read_table(path)


def _frame_fingerprint(path: Path) -> str | None:
    """The processing fingerprint a frame's log.json or failed.json was written with."""
    try:
        return json.loads(path.read_text()).get("fingerprint")
    except (OSError, ValueError):
        return None


def _frame_outputs_done(repo: Path, visit: int, detector: int, fingerprint: str) -> bool:
    """Processed, and with the current config and plug-ins (otherwise the frame is redone)."""
    return (layout.ccdvisit_path(repo, visit, detector).exists()
            and _frame_fingerprint(layout.frame_log_path(repo, visit, detector)) == fingerprint)


def source_plugins(repo: str | Path, cfg: Config) -> list:
    """The repository's measurement plug-ins (``[measurement] plugins``), loaded and checked."""
    from .plugins import load_all
    from .release.schema import SOURCE_SCHEMA

    return load_all(cfg.measurement.plugins, base=repo, reserved=SOURCE_SCHEMA.names)


def process_frame(task: FrameTask) -> dict:
    """Process one frame and write its outputs; return a small summary (runs in workers).
    The freed C heap goes back to the system after each frame (a worker's resident memory
    would otherwise keep every frame's high-water mark)."""
    try:
        return _process_frame(task)
    finally:
        trim_heap()


def _process_frame(task: FrameTask) -> dict:
    """:func:`process_frame` without the heap trim.

    Never raises for a problem of this frame: the failure is written to ``failed.json``
    and returned, so the run goes on with the other frames. The raw frame and the masters
    are dropped as soon as ISR is done (they are not needed by characterisation, the
    memory peak). The frame log holds the CPU seconds (every thread of the process) and
    the wall seconds of each step.
    """
    from .isr import run as isr_run
    from .process import Steps, process_exposure
    from .raw.reader import read_raw
    from .repo.store import read_master, write_calexp

    repo = Path(task.repo)
    info = task.info
    cfg = from_dict(task.config)
    fdir = layout.frame_dir(repo, info.visit, info.detector)
    fdir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(fdir)  # left by a killed run
    layout.ccdvisit_path(repo, info.visit, info.detector).unlink(missing_ok=True)  # outputs of another config
    t0 = time.perf_counter()
    step = Steps()
    try:
        plugins = source_plugins(repo, cfg)
        bias_p = layout.calib_path(repo, "bias", info.detector)
        flat_p = layout.calib_path(repo, "flat", info.detector, info.band)
        dark_p = layout.calib_path(repo, "dark", info.detector)
        for p, what in ((bias_p, "master bias"), (flat_p, f"master flat for band {info.band}")):
            if not p.exists():
                raise InputError(f"no {what} for detector {info.detector} (run 'minidr calibs')", path=info.path)
        refcat_p = layout.refcat_path(repo)
        if not refcat_p.exists():
            raise InputError("no reference catalog ingested (use 'minidr ingest --refcat FILE')")
        with step("read"):
            refcat = _load_refcat(str(refcat_p), refcat_p.stat().st_mtime)
            inputs = (read_raw(info.path), read_master(bias_p), read_master(dark_p) if dark_p.exists() else None,
                      read_master(flat_p))
        with step("isr"):
            exp = isr_run(*inputs, cfg)
        del inputs  # the raw frame and the masters go here
        result = process_exposure(exp, refcat, cfg, plugins, step)
    except Exception as exc:  # noqa: BLE001 - one frame's failure must not stop the run
        message = f"visit {info.visit} detector {info.detector}: {exc}"
        meta = getattr(exc, "metadata", {})
        with atomic_path(layout.failed_path(repo, info.visit, info.detector)) as tmp:
            tmp.write_text(json.dumps({"message": message, "error": type(exc).__name__, "fingerprint": task.fingerprint,
                                       "metadata": {k: _jsonable(v) for k, v in meta.items()}}, indent=1))
        return {"visit": info.visit, "detector": info.detector, "status": "failed", "message": message, "n_sources": 0}
    layout.failed_path(repo, info.visit, info.detector).unlink(missing_ok=True)
    with step("write"):
        write_calexp(layout.calexp_path(repo, info.visit, info.detector), result.exposure, {"psf": result.psf})  # atomic
        result.exposure = None  # the planes go before the catalogue is written
        with atomic_path(layout.sources_path(repo, info.visit, info.detector)) as tmp:
            pq.write_table(result.sources, tmp, compression="zstd")
    timings = {k: round(v, 4) for k, v in step.cpu.items()}
    wall = {k: round(v, 4) for k, v in step.wall.items()}
    with atomic_path(layout.frame_log_path(repo, info.visit, info.detector)) as tmp:
        tmp.write_text(json.dumps({"timings": timings, "wall": wall, "fingerprint": task.fingerprint,
                                   "ccdvisit": result.ccdvisit}, indent=1, default=str))
    with atomic_path(layout.ccdvisit_path(repo, info.visit, info.detector)) as tmp:  # the "done" marker, last
        tmp.write_text(json.dumps(result.ccdvisit, indent=1, sort_keys=True))
    return {"visit": info.visit, "detector": info.detector, "status": "done", "message": "",
            "n_sources": result.sources.num_rows, "seconds": time.perf_counter() - t0, "timings": timings}


def _jsonable(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return str(v)


def process(repo, jobs: int = 1, executor: str = "local", progress=_no_progress, quiet: bool = False,
            pool=None) -> StageReport:
    """Process every ingested science frame not processed yet (resumable); in ``jobs``
    workers, or in the ``pool`` that :func:`make_executor` yielded (whose workers may have
    started already)."""
    t0 = time.perf_counter()
    report = StageReport("process")
    from .plugins import processing_fingerprint

    cfg = repo.config
    fingerprint = processing_fingerprint(cfg, source_plugins(repo.path, cfg))  # a bad plug-in stops here
    science = repo.registry.raws(imagetyp="science")
    todo = []
    for info in science:
        failed = layout.failed_path(repo.path, info.visit, info.detector)
        if _frame_outputs_done(repo.path, info.visit, info.detector, fingerprint):
            report.skipped += 1
        elif failed.exists() and _frame_fingerprint(failed) == fingerprint:
            msg = json.loads(failed.read_text())["message"]
            report.failed.append((f"visit {info.visit} detector {info.detector}", msg + " (earlier run)"))
        else:
            todo.append(info)
    # largest frames first, so that no big frame starts last while the other workers idle
    # (stable: equal frames keep the registry's order; the outputs do not depend on it)
    todo.sort(key=lambda info: -int(np.prod(info.shape)))
    cfg_dict = cfg.to_dict()
    rows = []
    timings: dict[str, float] = {}
    with progress(len(todo), "process", quiet) as advance, \
            (contextlib.nullcontext(pool) if pool is not None else make_executor(jobs, executor)) as (submit, completed):
        futures = [submit(process_frame, FrameTask(str(repo.path), info, cfg_dict, fingerprint)) for info in todo]
        for fut in completed(futures):
            res = fut.result()
            rows.append({k: res[k] for k in ("visit", "detector", "status", "message", "n_sources")})
            if res["status"] == "done":
                report.done += 1
                for k, v in res.get("timings", {}).items():
                    timings[k] = timings.get(k, 0.0) + v
            else:
                report.failed.append((f"visit {res['visit']} detector {res['detector']}", res["message"]))
            advance()
    if rows:
        repo.registry.record_frames(sorted(rows, key=lambda r: (r["visit"], r["detector"])))
    report.seconds = time.perf_counter() - t0
    report.details["timings"] = timings
    return report


# --- association and forced photometry ------------------------------------------------------


def done_frames(repo_path: Path) -> list[dict]:
    """CcdVisit rows of every successfully processed frame, sorted by (visit, detector)."""
    rows = []
    base = Path(repo_path) / "processed"
    for p in sorted(base.glob("*/det*/ccdvisit.json")):
        rows.append(json.loads(p.read_text()))
    rows.sort(key=lambda r: (r["visit"], r["detector"]))
    return rows


def _inputs_fingerprint(frames: list[dict], cfg: Config) -> str:
    import hashlib

    h = hashlib.sha256()
    h.update(cfg.hash().encode())
    for r in frames:
        h.update(f"{r['ccdVisitId']}:{r['nSources']}:{r['zeroPoint']!r};".encode())
    return h.hexdigest()


def _check_current(repo, frames: list[dict]) -> None:
    """Refuse to associate frames processed under another config or other plug-ins."""
    from .plugins import processing_fingerprint

    fingerprint = processing_fingerprint(repo.config, source_plugins(repo.path, repo.config))
    stale = [f for f in frames
             if _frame_fingerprint(layout.frame_log_path(repo.path, f["visit"], f["detector"])) != fingerprint]
    if stale:
        raise RepoError(f"{repo.path}: {len(stale)} of {len(frames)} frames were processed with another configuration "
                        f"or plug-ins (first: visit {stale[0]['visit']} detector {stale[0]['detector']}); "
                        "run 'minidr process' again")


def forced_frame(repo: str, ccdvisit: dict, object_ids, object_ra, object_dec, lock=None) -> pa.Table:
    """Forced PSF photometry of the given Objects on one calibrated frame (runs in workers
    or threads; ``lock``, if given, is held while the measurement kernel runs)."""
    from .associate.calexp import read_forced_inputs
    from .associate.forced import measure_frame
    from .image.psf import PsfModel
    from .units import inst_to_njy_scale

    exp = read_forced_inputs(layout.calexp_path(Path(repo), ccdvisit["visit"], ccdvisit["detector"]))
    psf = PsfModel.from_dict(exp.psf)
    with lock or contextlib.nullcontext():
        res = measure_frame(exp.image, exp.variance, exp.mask, exp.wcs, psf, object_ids, object_ra, object_dec)
    order = np.argsort(res["objectId"], kind="stable")
    n = len(order)
    scale = inst_to_njy_scale(ccdvisit["zeroPoint"])
    cvid = int(ccdvisit["ccdVisitId"])
    return pa.table({
        "forcedSourceId": np.int64(cvid) * FORCED_ID_FACTOR + np.arange(n, dtype=np.int64),
        "objectId": np.asarray(res["objectId"], dtype=np.int64)[order],
        "ccdVisitId": np.full(n, cvid, dtype=np.int64),
        "visit": np.full(n, ccdvisit["visit"], dtype=np.int64),
        "detector": np.full(n, ccdvisit["detector"], dtype=np.int32),
        "band": pa.array([ccdvisit["band"]] * n, type=pa.string()),
        "midpointMjdTai": np.full(n, ccdvisit["midpointMjdTai"]),
        "psfFlux": np.asarray(res["psfFlux"], dtype=np.float64)[order] * scale,
        "psfFluxErr": np.asarray(res["psfFluxErr"], dtype=np.float64)[order] * scale,
        "flags": np.asarray(res["flags"], dtype=np.int32)[order],
    })


def _forced_in_threads(repo: str, frames: list[dict], object_ids, object_ra, object_dec, jobs: int):
    """Yield ``(ccdVisitId, table)`` of :func:`forced_frame` for each frame, computed in this
    process by ``jobs`` threads: reading (zlib releases the GIL) overlaps, the measurement
    kernel (itself multi-threaded) runs one frame at a time; at most ``jobs`` frames are in
    memory. No worker process to start, nothing to pickle."""
    import collections
    import threading
    from concurrent.futures import ThreadPoolExecutor

    lock = threading.Lock()
    todo = iter(frames)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        pending = collections.deque()

        def submit_next():
            r = next(todo, None)
            if r is not None:
                pending.append((r["ccdVisitId"], pool.submit(forced_frame, repo, r, object_ids, object_ra,
                                                             object_dec, lock)))

        for _ in range(max(1, jobs)):
            submit_next()
        while pending:
            cvid, fut = pending.popleft()
            table = fut.result()
            submit_next()
            yield cvid, table


def associate(repo, jobs: int = 1, executor: str = "local", progress=_no_progress, quiet: bool = False) -> StageReport:
    """Associate all Sources into Objects and run forced photometry (redone when inputs change)."""
    from .associate import associate as associate_sources

    t0 = time.perf_counter()
    report = StageReport("associate")
    cfg = repo.config
    frames = done_frames(repo.path)
    if not frames:
        raise RepoError(f"{repo.path}: no processed frames to associate (run 'minidr process')")
    _check_current(repo, frames)
    fingerprint = _inputs_fingerprint(frames, cfg)
    remove_stale_temporaries(layout.associated_dir(repo.path))
    marker = layout.associated_dir(repo.path) / "inputs.json"
    if marker.exists() and json.loads(marker.read_text()).get("fingerprint") == fingerprint:
        report.skipped = len(frames)
        report.seconds = time.perf_counter() - t0
        return report
    sources = pa.concat_tables([pq.read_table(layout.sources_path(repo.path, r["visit"], r["detector"])) for r in frames])
    bands = sorted({r["band"] for r in frames}, key=_band_key)
    result = associate_sources(sources, bands, cfg.association)
    sources = sources.append_column("objectId", pa.array(result.object_ids, type=pa.int64()))
    objects = result.objects
    obj_ids = objects.column("objectId").to_numpy()
    obj_ra = objects.column("coord_ra").to_numpy()
    obj_dec = objects.column("coord_dec").to_numpy()

    forced_parts: dict[int, pa.Table] = {}
    with progress(len(frames), "forced photometry", quiet) as advance:
        if executor == "local":  # threads in this process (worker processes would only add start-up)
            for cvid, table in _forced_in_threads(str(repo.path), frames, obj_ids, obj_ra, obj_dec, jobs):
                forced_parts[cvid] = table
                advance()
        else:
            with make_executor(jobs, executor) as (submit, completed):
                futs = {submit(forced_frame, str(repo.path), r, obj_ids, obj_ra, obj_dec): r["ccdVisitId"]
                        for r in frames}
                for fut in completed(list(futs)):
                    forced_parts[futs[fut]] = fut.result()
                    advance()
    forced = pa.concat_tables([forced_parts[k] for k in sorted(forced_parts)])

    for name, table in (("Source", sources), ("Object", objects), ("ForcedSource", forced)):
        with atomic_path(layout.associated_path(repo.path, name)) as tmp:
            pq.write_table(table, tmp, compression="zstd")
    with atomic_path(marker) as tmp:
        tmp.write_text(json.dumps({"fingerprint": fingerprint, "bands": bands,
                                   "frames": [r["ccdVisitId"] for r in frames]}, indent=1))
    report.done = len(frames)
    report.details = {"objects": objects.num_rows, "sources": sources.num_rows, "forced": forced.num_rows}
    report.seconds = time.perf_counter() - t0
    return report


# --- publishing -----------------------------------------------------------------------------

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_release_name(repo, name: str) -> Path:
    """The final directory of release ``name``; refuses bad or already used names."""
    if not _NAME.match(name):
        raise ReleaseError(f"bad release name {name!r}: use letters, digits, '_', '.', '-'")
    final = layout.release_dir(repo.path, name)
    if final.exists():
        raise ReleaseError(f"release {name} already exists in {repo.path}; releases are immutable, choose a new name")
    return final


def visit_table(ccdvisits: pa.Table) -> pa.Table:
    """One row per visit: pointing, band, times and per-visit medians of the CcdVisit rows."""
    import duckdb

    con = duckdb.connect()
    con.register("cv", ccdvisits)
    return con.sql("""
        SELECT visit, any_value(band) AS band,
               any_value(pointingRa) AS ra, any_value(pointingDec) AS dec,
               min(obsStartMjd) AS obsStartMjd, min(midpointMjdTai) AS midpointMjdTai,
               any_value(expTime) AS expTime, median(seeing) AS seeing, median(skyBg) AS skyBg,
               median(skyNoise) AS skyNoise, median(zeroPoint) AS zeroPoint, median(astromRms) AS astromRms,
               count(*)::INTEGER AS nDetectors, sum(nSources)::BIGINT AS nSources
        FROM cv GROUP BY visit ORDER BY visit""").arrow().read_all()


def publish(repo, name: str, progress=_no_progress, quiet: bool = False) -> StageReport:
    """Publish the associated tables as the immutable release ``name``."""
    from .release import schema as rschema
    from .release.writer import write_release

    t0 = time.perf_counter()
    final = check_release_name(repo, name)
    marker = layout.associated_dir(repo.path) / "inputs.json"
    if not marker.exists():
        raise RepoError(f"{repo.path}: nothing associated yet (run 'minidr associate')")
    assoc = json.loads(marker.read_text())
    frames = [f for f in done_frames(repo.path) if f["ccdVisitId"] in set(assoc["frames"])]
    if _inputs_fingerprint(frames, repo.config) != assoc["fingerprint"] or len(frames) != len(assoc["frames"]):
        raise RepoError(f"{repo.path}: processed frames changed since association (run 'minidr associate' again)")
    bands = assoc["bands"]
    cfg = repo.config
    objects = rschema.conform(pq.read_table(layout.associated_path(repo.path, "Object")), rschema.object_schema(bands))
    sources = rschema.conform(pq.read_table(layout.associated_path(repo.path, "Source")), rschema.SOURCE_SCHEMA)
    forced = rschema.conform(_with_object_positions(pq.read_table(layout.associated_path(repo.path, "ForcedSource")), objects),
                             rschema.FORCED_SOURCE_SCHEMA)
    cv = pa.Table.from_pylist(frames)
    ccdvisit = rschema.conform(cv, rschema.CCD_VISIT_SCHEMA)
    visits = rschema.conform(visit_table(cv), rschema.VISIT_SCHEMA)

    reg = repo.registry
    used = {f["rawPath"] for f in frames}
    inputs = [{"path": os.path.relpath(r["path"], repo.path) if str(r["path"]).startswith(str(repo.path)) else r["path"],
               "sha256": r["sha256"], "imagetyp": r["imagetyp"]}
              for r in reg.raw_paths() if r["imagetyp"] != "science" or r["path"] in used]
    refcat_p = layout.refcat_path(repo.path)
    if refcat_p.exists():
        inputs.append({"path": "refcat/refcat.parquet", "sha256": sha256_file(refcat_p), "imagetyp": "refcat"})
    manifest = {
        "name": name,
        "software": {"name": "minidr", "version": __version__},
        "config": cfg.to_dict(),
        "config_hash": cfg.hash(),
        "plugins": [{"spec": p.spec, "sha256": p.source_sha256, "columns": [c.name for c in p.columns]}
                    for p in source_plugins(repo.path, cfg)],
        "bands": bands,
        "inputs": sorted(inputs, key=lambda d: d["path"]),
    }
    with progress(1, f"release {name}", quiet) as advance:
        write_release(
            final,
            catalogs={"Object": (objects, "coord_ra", "coord_dec"),
                      "Source": (sources, "ra", "dec"),
                      "ForcedSource": (forced, "coord_ra", "coord_dec")},
            tables={"Visit": visits, "CcdVisit": ccdvisit},
            manifest=manifest,
            partition_rows=cfg.release.partition_rows,
            row_group_rows=cfg.release.row_group_rows,
            compression=cfg.release.compression,
        )
        advance()
    reg.record_release(name, str(final), objects.num_rows, sources.num_rows)
    report = StageReport("release", done=1, seconds=time.perf_counter() - t0)
    report.details = {"objects": objects.num_rows, "sources": sources.num_rows, "forced": forced.num_rows,
                      "path": str(final)}
    return report


def _with_object_positions(forced: pa.Table, objects: pa.Table) -> pa.Table:
    """ForcedSource has no position of its own: partition it by its Object's position."""
    import duckdb

    con = duckdb.connect()
    con.register("f", forced)
    con.register("o", objects.select(["objectId", "coord_ra", "coord_dec"]))
    cols = ", ".join(f'f."{c}"' for c in forced.column_names)
    return con.sql(f"SELECT {cols}, o.coord_ra, o.coord_dec FROM f JOIN o USING (objectId) "
                   "ORDER BY f.forcedSourceId").arrow().read_all()


def run(repo, name: str, jobs: int = 1, executor: str = "local", progress=_no_progress,
        quiet: bool = False, echo=lambda s: None) -> list[StageReport]:
    """calibs + process + associate + release, each resumable; returns the stage reports."""
    check_release_name(repo, name)
    reports = []
    # one pool for calibs and process: its workers start (imports, numba cache) once
    with make_executor(jobs, executor) as pool:
        for stage in (
            lambda: make_calibs(repo, progress, quiet, jobs, executor, pool),
            lambda: process(repo, jobs, executor, progress, quiet, pool),
        ):
            rep = stage()
            reports.append(rep)
            echo(rep.summary())
    for stage in (
        lambda: associate(repo, jobs, executor, progress, quiet),
        lambda: publish(repo, name, progress, quiet),
    ):
        rep = stage()
        reports.append(rep)
        echo(rep.summary())
    return reports


__all__ = ["make_calibs", "process", "associate", "publish", "run", "StageReport", "make_executor",
           "done_frames", "ccd_visit_id"]
