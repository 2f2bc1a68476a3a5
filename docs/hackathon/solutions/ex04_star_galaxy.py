"""Exercise 4: star/galaxy separation against the truth."""

import pandas as pd
import pyarrow as pa

import minidr
from _common import REPO, SURVEY

dr = minidr.open_release(REPO)
truth = pd.read_parquet(SURVEY / "truth_objects.parquet")
obj = dr.sql("""
    SELECT o.objectId, o.coord_ra, o.coord_dec, o.refExtendedness, o.r_psfMag,
           avg(s.ixx + s.iyy) AS size
    FROM Object o JOIN Source s USING (objectId)
    WHERE o.r_psfMag < 22
    GROUP BY ALL""").to_pandas()
m = dr.xmatch(pa.table({"ra": truth["ra"], "dec": truth["dec"], "truthId": truth["truthId"],
                        "is_star": truth["is_star"]}), radius_arcsec=1.0).to_pandas()
m = m[m["objectId"].notna()][["truthId", "is_star", "objectId"]].merge(obj, on="objectId")
m["pred_star"] = m["refExtendedness"] < 0.5
acc = (m["pred_star"] == m["is_star"]).mean()
print(f"{len(m)} objects with r < 22 matched to truth; refExtendedness right for {acc:.1%}")
print(m.groupby("is_star")["size"].median().rename("median ixx+iyy [pix^2]"))

assert len(m) >= 30
assert acc >= 0.9
assert m.loc[~m["is_star"], "size"].median() > m.loc[m["is_star"], "size"].median()
