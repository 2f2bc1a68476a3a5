"""`--executor dask://HOST:PORT` runs the same per-frame tasks on a Dask cluster (issue 3)."""

from __future__ import annotations

import shutil

import pytest

from minidr import pipeline
from minidr.repo import layout
from minidr.repository import Repo

distributed = pytest.importorskip("distributed")


def test_dask_executor_gives_the_same_frames(tmp_path, sample_release, sample_survey):
    sample_repo, _ = sample_release
    science = sorted((sample_survey / "raw" / "science").iterdir())[:2]
    repo = Repo.create(tmp_path / "repo")
    repo.ingest(science, refcat=sample_survey / "refcat.parquet")
    shutil.copytree(sample_repo / "calibs", repo.path / "calibs")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        address = cluster.scheduler_address.replace("tcp://", "dask://")
        report = pipeline.process(repo, executor=address)
    assert report.done == 2 and not report.failed
    for info in repo.registry.raws(imagetyp="science"):
        mine = layout.sources_path(repo.path, info.visit, info.detector).read_bytes()
        theirs = layout.sources_path(sample_repo, info.visit, info.detector).read_bytes()
        assert mine == theirs


def test_unreachable_scheduler_is_one_clear_error(tmp_path, sample_survey):
    from minidr.errors import MinidrError

    repo = Repo.create(tmp_path / "repo")
    repo.ingest(sorted((sample_survey / "raw" / "science").iterdir())[:1])
    with pytest.raises(MinidrError, match="cannot reach the Dask scheduler"):
        pipeline.process(repo, executor="dask://127.0.0.1:9")
