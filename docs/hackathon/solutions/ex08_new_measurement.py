"""Exercise 8: add a new measurement (a numba kernel) to the pipeline, publish DR2, query it."""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa

import minidr
from _common import OUT, REPO, SURVEY

HERE = Path(__file__).resolve().parent
WORK = OUT / "ex08-repo"


def _writable(func, path, _exc):
    os.chmod(path, stat.S_IWUSR | stat.S_IRUSR)  # releases are read-only: this script's own earlier copy
    func(path)


# 1. a copy of the sample repository (the sample itself is shared with everyone else), with DR1
shutil.rmtree(WORK, onerror=_writable) if WORK.exists() else None
shutil.copytree(REPO, WORK, ignore=shutil.ignore_patterns("*.lock"))

# 2. the plug-in goes into the repository, and minidr.toml names it
(WORK / "plugins").mkdir()
shutil.copy(HERE / "concentration.py", WORK / "plugins" / "concentration.py")
toml = (WORK / "minidr.toml").read_text()
assert "plugins = []" in toml
(WORK / "minidr.toml").write_text(toml.replace("plugins = []", 'plugins = ["plugins/concentration.py:concentration"]'))

# 3. the same command as for DR1: every frame is processed again (its config changed), the
#    master calibrations are reused, and DR2 is published beside DR1
res = subprocess.run([sys.executable, "-m", "minidr", "run", str(WORK), "DR2", "--jobs", "2"],
                     capture_output=True, text=True)
print(res.stderr[-1500:])
assert res.returncode == 0, res.stderr[-3000:]

# 4. query the new columns
dr1 = minidr.open_release(WORK, "DR1")
dr2 = minidr.open_release(WORK, "DR2")
assert "concentration" not in dr1.schema("Source").names  # DR1 is immutable
field = dr2.schema("Source").field("ap1Flux")
print("ap1Flux:", field.metadata[b"unit"].decode(), "-", field.metadata[b"description"].decode())
assert field.metadata[b"unit"] == b"nJy"
assert dr1.tables()["Source"] == dr2.tables()["Source"]  # same detections: only columns were added

src = dr2.sql("""
    SELECT objectId, band, snr, extendedness, concentration, ap1Flux, psfFlux
    FROM Source WHERE snr > 30 AND flags = 0""").to_pandas()
truth = pd.read_parquet(SURVEY / "truth_objects.parquet")
m = dr2.xmatch(pa.table({"ra": truth["ra"], "dec": truth["dec"], "is_star": truth["is_star"]}),
               radius_arcsec=0.5, columns=["objectId"]).to_pandas()
src = src.merge(m[m["objectId"].notna()][["objectId", "is_star"]], on="objectId")
summary = src.groupby("is_star")["concentration"].describe()[["count", "25%", "50%", "75%"]]
print(summary.round(3))
stars, galaxies = src[src["is_star"]], src[~src["is_star"]]

# a star holds the PSF's share of its light within 1 FWHM: about 0.8 for these Moffat PSFs
assert len(stars) >= 50 and len(galaxies) >= 10
assert 0.65 < stars["concentration"].median() < 0.9
assert galaxies["concentration"].median() < stars["concentration"].median() - 0.05
# the new flux is calibrated like the others: a fixed fraction of psfFlux for stars
ratio = (stars["ap1Flux"] / stars["psfFlux"]).median()
print(f"median ap1Flux / psfFlux of stars: {ratio:.3f}")
assert 0.6 < ratio < 0.9

# the DR2 manifest records the plug-in and the checksum of its code
(plugin,) = dr2.manifest["plugins"]
print("DR2 plug-in:", plugin)
assert plugin["columns"] == ["concentration", "ap1Flux"] and len(plugin["sha256"]) == 64
assert not dr1.manifest.get("plugins")
