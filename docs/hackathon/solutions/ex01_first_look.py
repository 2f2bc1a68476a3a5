"""Exercise 1: tables, row counts, units, the brightest objects."""

import minidr
from _common import REPO

dr = minidr.open_release(REPO)
counts = dr.tables()
print(counts)
schema = dr.schema("Object")
units = {f.name: (f.metadata or {}).get(b"unit", b"").decode() for f in schema}
print({k: units[k] for k in ("coord_ra", "coord_dec", "r_psfFluxMean", "r_psfMag")})
top = dr.sql("SELECT objectId, coord_ra, coord_dec, r_psfMag FROM Object "
             "WHERE r_psfMag IS NOT NULL ORDER BY r_psfMag LIMIT 5")
print(top.to_pandas())

assert counts["Object"] > 50 and counts["Source"] > counts["Object"] / 2
assert counts["ForcedSource"] >= counts["Source"] / 2
assert units["coord_ra"] == "deg" and units["r_psfFluxMean"] == "nJy" and units["r_psfMag"] == "mag"
mags = top["r_psfMag"].to_pylist()
assert mags == sorted(mags) and 10 < mags[0] < 20
