"""Exercise 3: light curves and variable stars."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

import minidr  # noqa: E402
from _common import OUT, REPO, SURVEY  # noqa: E402

dr = minidr.open_release(REPO)
cand = dr.sql("""
    SELECT objectId, coord_ra, coord_dec, r_psfMag, r_psfFluxNdata AS n,
           r_psfFluxChi2 / (r_psfFluxNdata - 1) AS chi2_dof
    FROM Object
    WHERE r_psfFluxNdata >= 3 AND refExtendedness < 0.5 AND r_psfMag < 22
    ORDER BY chi2_dof DESC""").to_pandas()
print(cand.head(10))
best = int(cand["objectId"].iloc[0])
lc = dr.lightcurve(best).to_pandas()
fig, ax = plt.subplots()
for kind, mark in (("source", "o"), ("forced", "x")):
    d = lc[(lc["kind"] == kind) & (lc["band"] == "r")]
    ax.errorbar(d["midpointMjdTai"], d["psfFlux"], d["psfFluxErr"], fmt=mark, label=kind)
ax.set_xlabel("MJD")
ax.set_ylabel("r psfFlux [nJy]")
ax.legend()
fig.savefig(OUT / "lightcurve.png")

# check against the truth: the most variable star is a true variable
truth = pd.read_parquet(SURVEY / "truth_objects.parquet")
from minidr.qa.truth import sky_truth_ids  # noqa: E402

tid = sky_truth_ids(cand["coord_ra"].to_numpy()[:1], cand["coord_dec"].to_numpy()[:1], truth)[0]
print("truth of the top candidate:", truth.set_index("truthId").loc[tid, ["is_variable", "var_amplitude"]].to_dict())
assert truth.set_index("truthId").loc[tid, "is_variable"]
assert set(lc["kind"]) == {"source", "forced"}
