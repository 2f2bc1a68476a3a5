"""`minidr demo` prints the summary and runs its two example queries (the README's first command)."""

from __future__ import annotations

import subprocess
import sys


def test_demo_summary_and_queries_on_a_processed_repo(sample_release):
    repo, _ = sample_release
    res = subprocess.run([sys.executable, "-m", "minidr", "demo", str(repo.parent), "--quiet"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "minidr demo: release DR1" in out
    assert "frames 12," in out
    assert "Brightest point sources" in out and "Seeing, zero point" in out
    # the second query lists every visit of the sample (6 visits)
    visit_lines = [line for line in out.splitlines() if line.startswith("1000")]
    assert len(visit_lines) >= 6
