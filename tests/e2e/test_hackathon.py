"""Every hackathon solution runs against the sample release and asserts its answer (issue 8)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SOLUTIONS = sorted((Path(__file__).resolve().parents[2] / "docs" / "hackathon" / "solutions").glob("ex*.py"))


@pytest.mark.parametrize("script", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution(script, sample_release, sample_survey, tmp_path):
    repo, _ = sample_release
    env = {**os.environ, "MINIDR_REPO": str(repo), "MINIDR_SURVEY": str(sample_survey), "MINIDR_OUT": str(tmp_path)}
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
