"""Exercise 6: data quality per visit and detector."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

import minidr  # noqa: E402
from _common import OUT, REPO, SURVEY  # noqa: E402

dr = minidr.open_release(REPO)
cv = dr.sql("SELECT visit, detector, band, seeing, zeroPoint, astromRms * 1000 AS astrom_rms_mas, "
            "astromNMatch FROM CcdVisit ORDER BY visit, detector").to_pandas()
print(cv)
fig, axes = plt.subplots(3, 1, sharex=True)
for ax, col in zip(axes, ["seeing", "zeroPoint", "astrom_rms_mas"]):
    ax.plot(range(len(cv)), cv[col], "o")
    ax.set_ylabel(col)
fig.savefig(OUT / "quality.png")
worst = dr.sql("SELECT visit, seeing FROM Visit ORDER BY seeing DESC LIMIT 1").to_pandas()
print("worst seeing:", worst.to_dict("records"))

truth = pd.read_parquet(SURVEY / "truth_frames.parquet").groupby("visit")["psf_fwhm"].mean()
assert int(worst["visit"][0]) == int(truth.idxmax())
assert (cv["astrom_rms_mas"] < 50).all()
assert cv["zeroPoint"].between(25, 35).all()
