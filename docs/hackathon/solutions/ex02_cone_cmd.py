"""Exercise 2: cone search and a colour-magnitude diagram."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import minidr  # noqa: E402
from _common import OUT, REPO  # noqa: E402

dr = minidr.open_release(REPO)
near = dr.cone("10:00:00", "+02:00:00", 120).to_pandas()
same = dr.sql("SELECT objectId FROM Object WHERE cone(coord_ra, coord_dec, 150.0, 2.0, 2.0/60)").to_pandas()
stars = near[(near["refExtendedness"] < 0.5) & near["g_psfMag"].notna() & near["r_psfMag"].notna()]
fig, ax = plt.subplots()
ax.plot(stars["g_psfMag"] - stars["r_psfMag"], stars["r_psfMag"], "k.")
ax.invert_yaxis()
ax.set_xlabel("g - r [mag]")
ax.set_ylabel("r [mag]")
fig.savefig(OUT / "cmd.png")
print(f"{len(near)} objects within 2 arcmin, {len(stars)} stars with g and r")

assert set(near["objectId"]) == set(same["objectId"])
assert (near["separation"] <= 120).all()
assert len(stars) >= 10
assert np.median(stars["g_psfMag"] - stars["r_psfMag"]) > -0.5
assert (OUT / "cmd.png").stat().st_size > 1000
