"""Scientific accuracy of the whole chain against the simulator's truth (issues 3 and 4).

The thresholds are the ones the issues state; the sample survey is data_samples/.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from minidr.qa.truth import detection_metrics, object_metrics
from minidr.repo import layout


def _truth(sample_survey, name):
    return pq.read_table(sample_survey / f"truth_{name}.parquet").to_pandas()


@pytest.fixture(scope="module")
def released(sample_release):
    repo, name = sample_release
    rdir = layout.release_dir(repo, name)
    src = pd.concat([pq.read_table(p).to_pandas() for p in sorted((rdir / "Source" / "dataset").rglob("Npix=*.parquet"))])
    obj = pd.concat([pq.read_table(p).to_pandas() for p in sorted((rdir / "Object" / "dataset").rglob("Npix=*.parquet"))])
    return src.reset_index(drop=True), obj.reset_index(drop=True)


@pytest.fixture(scope="module")
def frame_metrics(released, sample_survey):
    src, _ = released
    return detection_metrics(src, _truth(sample_survey, "sources"), _truth(sample_survey, "frames"),
                             _truth(sample_survey, "objects"), _truth(sample_survey, "cosmics"))


def test_every_frame_processed(sample_release, sample_survey):
    repo, _ = sample_release
    frames = _truth(sample_survey, "frames")
    failed = sorted((repo / "processed").rglob("failed.json"))
    assert not failed, [p.read_text() for p in failed]
    assert len(list((repo / "processed").rglob("ccdvisit.json"))) == len(frames)


def test_detection_completeness_and_purity(frame_metrics):
    m = frame_metrics
    assert m["n_truth_snr10"] > 100
    assert m["completeness_snr10"] >= 0.98, m
    assert m["purity"] >= 0.99, m


def test_astrometry_against_truth(frame_metrics):
    m = frame_metrics
    assert m["n_bright"] > 30
    assert m["astrom_median_mas"] < 10, m
    assert m["astrom_p90_mas"] < 25, m


def test_photometric_scale_against_truth(frame_metrics):
    m = frame_metrics
    assert abs(m["flux_scale_bright"] - 1) < 0.005, m


def test_normalised_flux_residuals(frame_metrics):
    m = frame_metrics
    assert 0.9 <= m["flux_pull_robust_std"] <= 1.15, m


def test_no_cosmic_ray_becomes_a_source(frame_metrics):
    assert frame_metrics["cosmic_ray_detections"] == 0


def test_association_against_truth(released, sample_survey, sample_release):
    src, obj = released
    bands = [c[: -len("_psfFluxMean")] for c in obj.columns if c.endswith("_psfFluxMean")]
    m = object_metrics(obj, src, _truth(sample_survey, "sources"), _truth(sample_survey, "frames"),
                       _truth(sample_survey, "objects"), bands)
    assert m["n_detectable_stars"] > 50
    assert m["object_completeness_snr10"] >= 0.98, m
    assert m["split_fraction"] <= 0.004, m
    assert m["object_purity_2plus"] >= 0.99, m
    assert m["extendedness_accuracy_snr30"] >= 0.95, m
    assert m["extendedness_accuracy_stars"] >= 0.90, m
    assert m["extendedness_accuracy_galaxies"] >= 0.90, m


def test_one_object_never_has_two_sources_of_one_frame(released):
    src, _ = released
    dup = src.groupby(["objectId", "ccdVisitId"]).size()
    assert int(dup.max()) == 1


def test_object_columns_match_their_sources(released):
    src, obj = released
    n = src.groupby("objectId").size()
    o = obj.set_index("objectId")
    assert (o.loc[n.index, "nDetections"].to_numpy() == n.to_numpy()).all()
    assert np.all(o["firstMjd"] <= o["lastMjd"])
