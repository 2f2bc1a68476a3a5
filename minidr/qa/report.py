"""``minidr qa``: quality plots and a markdown summary of a release.

Reads the release through :class:`minidr.query.Release` (read-only) and writes
``REPO/qa/NAME/summary.md`` plus PNG plots. When the release came from ``minidr simulate``
(the truth tables sit beside the ingested raws, or ``truth_dir`` is given) it also reports
completeness and purity against the truth.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._io import atomic_path
from . import metrics, plots


@dataclass
class QaReport:
    directory: Path
    metrics: dict = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)

    @property
    def summary_path(self) -> Path:
        return self.directory / "summary.md"


def find_truth(release_dir: Path) -> Path | None:
    """The simulator's output folder holding the raws of this release, if it has truth tables."""
    manifest = json.loads((release_dir / "manifest.json").read_text())
    repo = release_dir.parent.parent
    for entry in manifest.get("inputs", []):
        if entry.get("imagetyp") != "science":
            continue
        p = Path(entry["path"])
        p = p if p.is_absolute() else repo / p
        for parent in p.parents:
            if (parent / "truth_sources.parquet").exists():
                return parent
            if parent == parent.parent:
                break
    return None


def run_qa(repo_path, name: str | None = None, truth_dir=None, out_dir=None) -> QaReport:
    """Compute metrics and write plots and ``summary.md`` for release ``name`` (newest if None)."""
    from ..query import open_release

    dr = open_release(repo_path, name)
    name, release_dir = dr.name, dr.path
    out = Path(out_dir) if out_dir else Path(repo_path) / "qa" / name
    objects = dr.sql("SELECT * FROM Object", max_rows=50_000_000).to_pandas()
    sources = dr.sql("SELECT * FROM Source", max_rows=50_000_000).to_pandas()
    ccd = dr.sql("SELECT * FROM CcdVisit ORDER BY ccdVisitId").to_pandas()
    bands = [c[: -len("_psfFluxMean")] for c in objects.columns if c.endswith("_psfFluxMean")]

    m: dict = {"release": name, "objects": len(objects), "sources": len(sources), "frames": len(ccd)}
    m["photometric_repeatability"] = [metrics.photometric_repeatability(objects, sources, b, ccdvisits=ccd) for b in bands]
    m["astrometric_repeatability"] = metrics.astrometric_repeatability(objects, sources)
    m["per_frame"] = {
        "seeing_arcsec_median": float(ccd["seeing"].median()),
        "zero_point_range": [float(ccd["zeroPoint"].min()), float(ccd["zeroPoint"].max())],
        "astrom_rms_mas_median": float(ccd["astromRms"].median() * 1000),
    }
    truth = Path(truth_dir) if truth_dir else find_truth(release_dir)
    if truth is not None:
        from .truth import detection_metrics, object_metrics

        T = {n: pd.read_parquet(truth / f"truth_{n}.parquet") for n in ("sources", "frames", "objects", "cosmics")}
        m["truth_dir"] = str(truth)
        m["detection_vs_truth"] = detection_metrics(sources, T["sources"], T["frames"], T["objects"], T["cosmics"])
        m["objects_vs_truth"] = object_metrics(objects, sources, T["sources"], T["frames"], T["objects"], bands)

    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        files = [
            plots.sky_density(objects, tmp / "sky_density.png"),
            plots.per_frame(ccd, tmp / "per_frame.png"),
            plots.repeatability(objects, sources, bands, tmp / "photometric_repeatability.png"),
            plots.astrometric_residuals(objects, sources, tmp / "astrometric_residuals.png"),
        ]
        (tmp / "metrics.json").write_text(json.dumps(_clean(m), indent=1, sort_keys=True))
        (tmp / "summary.md").write_text(_markdown(m, [os.path.basename(f) for f in files]))
    return QaReport(out, m, [str(out / os.path.basename(f)) for f in files])


def _clean(v):
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.floating, float)):
        return None if not np.isfinite(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


def _fmt(v, digits=3):
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def _markdown(m: dict, files: list[str]) -> str:
    lines = [f"# QA of release {m['release']}", "",
             f"{m['objects']} objects, {m['sources']} sources, {m['frames']} frames.", "",
             "## Per frame", "",
             f"- median seeing: {_fmt(m['per_frame']['seeing_arcsec_median'])} arcsec",
             f"- zero points: {_fmt(m['per_frame']['zero_point_range'][0], 5)} to {_fmt(m['per_frame']['zero_point_range'][1], 5)} mag",
             f"- median astrometric fit RMS: {_fmt(m['per_frame']['astrom_rms_mas_median'])} mas", "",
             "## Repeatability of bright stars (S/N >= 50)", "",
             "| band | stars | PA1 [mmag] | photon noise only [mmag] | ratio |", "|---|---|---|---|---|"]
    for r in m["photometric_repeatability"]:
        lines.append(f"| {r['band']} | {r['n_stars']} | {_fmt(r['pa1_mmag'])} | {_fmt(r['expected_mmag'])} | {_fmt(r['ratio'])} |")
    a = m["astrometric_repeatability"]
    lines += ["", f"Astrometric repeatability: {_fmt(a['rms_mas'])} mas RMS for {a['n_stars']} stars "
              f"(noise-only {_fmt(a['expected_mas'])} mas, ratio {_fmt(a['ratio'])}).", ""]
    if "detection_vs_truth" in m:
        d, o = m["detection_vs_truth"], m["objects_vs_truth"]
        lines += ["## Against the simulation truth", "", f"truth: `{m['truth_dir']}`", "",
                  "| metric | value |", "|---|---|"]
        for k, v in {**d, **o}.items():
            lines.append(f"| {k} | {_fmt(v, 4)} |")
        lines.append("")
    lines += ["## Plots", ""] + [f"![{f}]({f})" for f in files] + [""]
    return "\n".join(lines)
