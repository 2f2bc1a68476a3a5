"""Shared fixtures.

The expensive ones (a repository processed end to end and its release DR1) are built once
per test session, also under pytest-xdist: the first worker builds them under a lock in
the session's shared temporary directory, the others reuse them.
"""

from __future__ import annotations

import fcntl
import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data_samples"


def _shared_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.getbasetemp()
    # under xdist every worker has its own basetemp below a common parent
    if base.name.startswith("popen-gw"):
        base = base.parent
    return base


def _build_once(tmp_path_factory, name: str, build):
    root = _shared_dir(tmp_path_factory) / name
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{name}.lock", "w") as lockfile:
        fcntl.flock(lockfile, fcntl.LOCK_EX)
        done = root / ".built"
        if not done.exists():
            if root.exists():
                shutil.rmtree(root)
            root.mkdir()
            info = build(root)
            done.write_text(json.dumps(info or {}))
        return root, json.loads(done.read_text())


@pytest.fixture(scope="session")
def sample_survey() -> Path:
    """The committed sample survey (raw FITS, refcat, truth) of data_samples/."""
    assert (SAMPLES / "refcat.parquet").exists(), "data_samples/ is missing its survey"
    return SAMPLES


@pytest.fixture(scope="session")
def sample_release(tmp_path_factory, sample_survey):
    """A repository made from data_samples/ and processed end to end into release DR1.

    Returns ``(repo_path, "DR1")``.
    """
    from minidr import pipeline
    from minidr.repository import Repo

    def build(root: Path):
        repo = Repo.create(root / "repo")
        repo.ingest([sample_survey / "raw"], refcat=sample_survey / "refcat.parquet")
        reports = pipeline.run(repo, "DR1", jobs=1)
        return {r.stage: {"done": r.done, "failed": r.failed} for r in reports}

    root, info = _build_once(tmp_path_factory, "sample-release", build)
    return root / "repo", "DR1"
