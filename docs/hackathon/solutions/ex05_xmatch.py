"""Exercise 5: cross-match a list of positions with the release."""

import io
import subprocess
import sys

import astropy.units as u
import numpy as np
import pandas as pd
from astropy.coordinates import SkyCoord

import minidr
from _common import OUT, REPO

dr = minidr.open_release(REPO)
objs = dr.sql("SELECT objectId, coord_ra, coord_dec FROM Object").to_pandas()
rng = np.random.default_rng(5)
pick = objs.sample(20, random_state=5)
mine = pd.DataFrame({
    "name": [f"target{i}" for i in range(25)],
    "ra": np.r_[pick["coord_ra"] + rng.normal(0, 0.2 / 3600, 20), rng.uniform(149.95, 150.05, 5)],
    "dec": np.r_[pick["coord_dec"] + rng.normal(0, 0.2 / 3600, 20), rng.uniform(1.97, 2.03, 5)],
})
mine.to_csv(OUT / "my_positions.csv", index=False)

py = dr.xmatch(mine, radius_arcsec=1.0).to_pandas()
cli = pd.read_csv(io.StringIO(subprocess.run(
    [sys.executable, "-m", "minidr", "xmatch", str(REPO), str(OUT / "my_positions.csv"), "--radius", "1",
     "--format", "csv"], capture_output=True, text=True, check=True).stdout))

cat = SkyCoord(objs["coord_ra"].to_numpy() * u.deg, objs["coord_dec"].to_numpy() * u.deg)
idx, sep, _ = SkyCoord(mine["ra"].to_numpy() * u.deg, mine["dec"].to_numpy() * u.deg).match_to_catalog_sky(cat)
expect = np.where(sep.arcsec <= 1.0, objs["objectId"].to_numpy()[idx], -1)
got = py.set_index("name").loc[mine["name"], "objectId"].fillna(-1).astype(int).to_numpy()
print(py[["name", "objectId", "separation"]])

assert (got == expect).all()
assert (cli["objectId"].fillna(-1).astype(int).to_numpy() == py["objectId"].fillna(-1).astype(int).to_numpy()).all()
assert (got[:20] >= 0).sum() >= 18
