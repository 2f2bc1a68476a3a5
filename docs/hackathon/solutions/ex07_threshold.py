"""Exercise 7: reprocess with another detection threshold; completeness and purity against the truth."""

import shutil

import pandas as pd
import pyarrow.parquet as pq

import minidr
from _common import OUT, REPO, SURVEY
from minidr.qa.truth import PIXEL_SCALE, detection_metrics, frame_match
from minidr.repo import layout

DETECTOR = 1
LOW = 3.0

# a new repository with a lower detection threshold (the default is 5 sigma)
cfg = minidr.Config().replace(detection={"threshold": LOW})
shutil.rmtree(OUT / "ex07-repo", ignore_errors=True)  # this script's own output of an earlier run
new = minidr.Repo.create(OUT / "ex07-repo", config=cfg)
science = sorted((SURVEY / "raw" / "science").glob(f"*-det{DETECTOR:03d}.fits*"))
report = new.ingest(science, refcat=SURVEY / "refcat.parquet")
print(report.summary())
# the master calibrations do not depend on the detection threshold: reuse the sample's
shutil.copytree(REPO / "calibs", new.path / "calibs")
stage = new.process()
print(f"processed {stage.done} frames, {len(stage.failed)} failed")
assert stage.done == len(science) and not stage.failed, stage.failed


def sources(repo):
    """Every Source of DETECTOR's frames, as processed in ``repo`` (before association)."""
    return pd.concat([pq.read_table(layout.sources_path(repo, info.visit, info.detector)).to_pandas()
                      for info in new.registry.raws(imagetyp="science")], ignore_index=True)


truth = {name: pq.read_table(SURVEY / f"truth_{name}.parquet").to_pandas()
         for name in ("sources", "frames", "objects", "cosmics")}
frames = truth["frames"][truth["frames"]["detector"] == DETECTOR]
default_thr = minidr.Repo(REPO).config.detection.threshold


def faint_completeness(src, fr):
    """Fraction of unblended, unsaturated truth stars of expected S/N 5-10 on one frame that were detected."""
    (visit, det), f = fr[["visit", "detector"]].iloc[0], fr.iloc[0]
    tr = truth["sources"][(truth["sources"]["visit"] == visit) & (truth["sources"]["detector"] == det)]
    s = src[(src["visit"] == visit) & (src["detector"] == det)]
    t, _ = frame_match(tr.reset_index(drop=True), s, f["psf_fwhm"] / PIXEL_SCALE, f["sky"])
    sel = t["is_star"] & ~t["blended"] & ~t["saturated"] & t["snr_exp"].between(5, 10)
    return int((t.loc[sel, "det_index"] >= 0).sum()), int(sel.sum())


per_frame, total = [], []
for thr, repo in ((default_thr, REPO), (LOW, new.path)):
    src = sources(repo)
    for visit, fr in frames.groupby("visit"):
        m = detection_metrics(src, truth["sources"], fr, truth["objects"])
        hit, n = faint_completeness(src, fr)
        per_frame.append({"visit": visit, "band": fr["band"].iloc[0], "threshold": thr,
                          "detections": m["n_detections"], "completeness": m["completeness_snr10"],
                          "faint_hit": hit, "faint_n": n, "purity": m["purity"]})
    m = detection_metrics(src, truth["sources"], frames, truth["objects"], truth["cosmics"])
    total.append({"threshold": thr, "detections": m["n_detections"], "completeness": m["completeness_snr10"],
                  "purity": m["purity"], "cosmic_ray_detections": m["cosmic_ray_detections"]})
per_frame = pd.DataFrame(per_frame)
faint = per_frame.groupby("threshold")[["faint_hit", "faint_n"]].sum()
per_frame["completeness_5_10"] = per_frame["faint_hit"] / per_frame["faint_n"]
print(per_frame.pivot(index=["visit", "band"], columns="threshold",
                      values=["detections", "completeness", "completeness_5_10", "purity"]).round(3).to_string())
table = pd.DataFrame(total)
table["completeness_5_10"] = (faint["faint_hit"] / faint["faint_n"]).loc[table["threshold"]].to_numpy()
print(table.round(4).to_string(index=False))

default, low = table.iloc[0], table.iloc[1]
assert default["threshold"] > LOW
assert low["detections"] > default["detections"]
assert low["completeness"] >= default["completeness"]
assert low["completeness_5_10"] > default["completeness_5_10"]
assert low["purity"] <= default["purity"]
