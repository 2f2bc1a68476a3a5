"""`minidr qa`: plots, summary, repeatability metrics and truth comparison (issue 4)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image


def test_qa_writes_plots_and_summary(sample_release, tmp_path):
    repo, name = sample_release
    out = tmp_path / "qa"
    res = subprocess.run([sys.executable, "-m", "minidr", "qa", str(repo), name, "-o", str(out), "--quiet"],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert "# QA of release DR1" in res.stdout
    for png in ("sky_density", "per_frame", "photometric_repeatability", "astrometric_residuals"):
        with Image.open(out / f"{png}.png") as im:
            assert im.size[0] > 200 and im.size[1] > 200
    m = json.loads((out / "metrics.json").read_text())
    # the sample survey came from `minidr simulate`: truth is found beside the raws
    assert m["truth_dir"].endswith("data_samples")
    assert m["detection_vs_truth"]["completeness_snr10"] >= 0.98
    for r in m["photometric_repeatability"]:
        assert r["n_stars"] >= 10, r
        assert 0.5 < r["ratio"] < 2.0, r
    assert m["astrometric_repeatability"]["rms_mas"] < 20


@pytest.mark.xfail(strict=True, reason="known shortfall: PA1 / expected-noise is 1.52 (g) and 1.32 (r) on the "
                   "sample (target <= 1.25; the expectation now includes the master flat's noise, which ISR "
                   "propagates). g, 25 stars with 2-3 visits, decomposed with a noise-free rendering of each "
                   "frame: the photon-noise realisation alone gives 1.34 (7.5% of seeded draws reach it), the "
                   "PSF model, centroids and neighbours 2.4 mmag, per-frame zero points 1.55 -> 1.61 before the "
                   "flat noise was propagated. No single pipeline error; docs/qa.md")
def test_pa1_within_photon_noise(sample_release, tmp_path):
    from minidr.qa.report import run_qa

    repo, name = sample_release
    m = run_qa(repo, name, out_dir=tmp_path / "qa").metrics
    for r in m["photometric_repeatability"]:
        assert r["ratio"] <= 1.25, r
