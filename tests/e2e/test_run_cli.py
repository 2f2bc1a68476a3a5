"""The chain from the command line: resume after a kill, reproducibility whatever --jobs,
verify, immutability, the Dask executor (issues 3 and 4)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minidr.repo import layout

MINIDR = [sys.executable, "-m", "minidr"]


def cli(*args, check=True, **kw):
    res = subprocess.run([*MINIDR, *map(str, args)], capture_output=True, text=True, **kw)
    if check and res.returncode != 0:
        raise AssertionError(f"minidr {' '.join(map(str, args))} failed ({res.returncode}):\n{res.stderr}")
    return res


def parquet_files(release: Path) -> dict[str, bytes]:
    return {str(p.relative_to(release)): p.read_bytes() for p in sorted(release.rglob("*.parquet"))}


@pytest.fixture(scope="module")
def rerun_repo(tmp_path_factory, sample_survey):
    """A second repository of the sample, run with --jobs 2 and killed once mid-way."""
    repo = tmp_path_factory.mktemp("cli") / "repo"
    cli("init", repo)
    cli("ingest", repo, sample_survey / "raw", "--refcat", sample_survey / "refcat.parquet", "--quiet")
    cli("calibs", repo, "--quiet")
    proc = subprocess.Popen([*MINIDR, "run", str(repo), "DR1", "--jobs", "2", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and not list((repo / "processed").rglob("ccdvisit.json")):
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    killed = proc.poll() is None
    if killed:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done_before = len(list((repo / "processed").rglob("ccdvisit.json")))
    res = cli("run", repo, "DR1", "--jobs", "2")
    return repo, killed, done_before, res


def test_resume_after_kill_finishes_and_skips_done_frames(rerun_repo, sample_survey):
    repo, killed, done_before, res = rerun_repo
    assert killed, "the first run finished before it could be killed"
    assert done_before >= 1
    assert f"{done_before} already done" in res.stderr
    assert not list(repo.rglob(".*.tmp-*")), "a temporary file was left behind"
    assert not list((repo / "releases").glob(".DR1.staging-*"))


def test_frame_logs_give_cpu_and_wall_seconds_per_step(rerun_repo):
    import json

    repo, *_ = rerun_repo
    logs = sorted((repo / "processed").rglob("log.txt"))
    assert logs
    for path in logs:
        log = json.loads(path.read_text())
        steps = {"read", "isr", "characterize", "astrometry", "photometry", "write"}
        assert steps <= log["timings"].keys() and steps <= log["wall"].keys()
        assert all(v >= 0 for v in [*log["timings"].values(), *log["wall"].values()])


def test_release_bytes_do_not_depend_on_jobs(rerun_repo, sample_release):
    repo, *_ = rerun_repo
    a = parquet_files(layout.release_dir(sample_release[0], sample_release[1]))
    b = parquet_files(layout.release_dir(repo, "DR1"))
    assert a.keys() == b.keys()
    different = [k for k in a if a[k] != b[k]]
    assert not different, different


def test_verify_detects_a_changed_byte(rerun_repo):
    repo, *_ = rerun_repo
    assert "every file matches" in cli("verify", repo).stdout
    victim = sorted((layout.release_dir(repo, "DR1") / "Object" / "dataset").rglob("Npix=*.parquet"))[0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    res = cli("verify", repo, "DR1", check=False)
    assert res.returncode == 1
    assert victim.name in res.stdout


def test_release_name_in_use_is_refused(rerun_repo):
    repo, *_ = rerun_repo
    res = cli("release", repo, "DR1", check=False)
    assert res.returncode != 0
    assert "already exists" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_second_writer_is_refused_while_first_holds_the_lock(rerun_repo):
    repo, *_ = rerun_repo
    from minidr.repo.lock import repo_lock

    with repo_lock(repo):
        res = cli("associate", repo, check=False)
    assert res.returncode != 0
    assert f"locked by PID {os.getpid()}" in res.stderr
