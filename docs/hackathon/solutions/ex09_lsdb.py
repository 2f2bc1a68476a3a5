"""Exercise 9: the release in LSDB/Dask: cone search and a cross-match."""

import lsdb
import pandas as pd

import minidr
from _common import REPO, SURVEY

dr = minidr.open_release(REPO)
objects = lsdb.open_catalog(dr.path / "Object")
cone = objects.cone_search(ra=150.0, dec=2.0, radius_arcsec=90).compute()
mine = dr.cone(150.0, 2.0, 90)
print(f"LSDB cone: {len(cone)} rows; minidr cone: {mine.num_rows} rows")

ref = pd.read_parquet(SURVEY / "refcat.parquet")
refcat = lsdb.from_dataframe(ref[["ra", "dec", "r_mag"]], ra_column="ra", dec_column="dec")
xm = objects.crossmatch(refcat, radius_arcsec=1.0, n_neighbors=1, suffixes=("", "_ref")).compute()
print(f"{len(xm)} Objects matched to the reference catalog")
own = dr.xmatch(ref[["ra", "dec"]], radius_arcsec=1.0).to_pandas()
print(f"minidr xmatch: {own['objectId'].notna().sum()} reference stars matched to an Object")

assert set(cone["objectId"]) == set(mine["objectId"].to_pylist())
assert abs(len(xm) - own["objectId"].notna().sum()) <= 2
