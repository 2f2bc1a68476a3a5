"""Release quality metrics (pure: pandas in, numbers out).

* PA1, photometric repeatability (LSST SRD, LPM-17): for bright unresolved Objects, each
  star's RMS of its good Sources' magnitudes about its mean in the band (with the
  ``n/(n-1)`` correction for the estimated mean), then the median over stars (as LSST's
  faro does; robust to the few variable stars); reported beside the same statistic of the
  Sources' own magnitude errors (photon and read noise) computed on seeded Gaussian noise,
  so that a ratio near 1 means the calibration adds no scatter of its own.
* AM1-like astrometric repeatability: RMS of Source positions about their Object's mean
  position [mas] for the same stars, beside the expectation from raErr/decErr.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..products import BAD_FOR_AGGREGATES
from ..units import MAS_PER_DEG, njy_to_abmag


def _bright_star_sources(objects: pd.DataFrame, sources: pd.DataFrame, band: str, min_snr: float) -> pd.DataFrame:
    stars = objects[(objects["refExtendedness"] < 0.5) & (objects[f"{band}_psfFluxNdata"] >= 2)]
    s = sources[(sources["band"] == band) & ((sources["flags"] & int(BAD_FOR_AGGREGATES)) == 0)]
    s = s[s["objectId"].isin(stars["objectId"]) & (s["psfFlux"] > 0) & (s["snr"] >= min_snr)]
    n = s.groupby("objectId")["psfFlux"].transform("size")
    return s[n >= 2]


def photometric_repeatability(objects, sources, band: str, min_snr: float = 50.0, ccdvisits=None) -> dict:
    """PA1 [mmag] of bright stars in ``band`` and its photon-noise-only expectation.

    Source flux errors include each frame's zero-point uncertainty; with ``ccdvisits``
    (ccdVisitId, zeroPointErr) that term is taken out again, so the expectation is the
    photon and read noise alone.
    """
    s = _bright_star_sources(objects, sources, band, min_snr)
    if len(s) < 4:
        return {"band": band, "n_stars": 0, "pa1_mmag": np.nan, "expected_mmag": np.nan, "ratio": np.nan}
    mag = njy_to_abmag(s["psfFlux"].to_numpy())
    err = 1.0857 * s["psfFluxErr"].to_numpy() / s["psfFlux"].to_numpy()
    if ccdvisits is not None and "zeroPointErr" in ccdvisits:
        zp_err = s["ccdVisitId"].map(ccdvisits.set_index("ccdVisitId")["zeroPointErr"]).fillna(0).to_numpy()
        err = np.sqrt(np.maximum(err**2 - zp_err**2, 0.0))
    g = pd.DataFrame({"objectId": s["objectId"].to_numpy(), "mag": mag, "err": err})
    obj_codes, idx = np.unique(g["objectId"].to_numpy(), return_inverse=True)
    pa1 = _median_star_rms(g["mag"].to_numpy(), idx, len(obj_codes)) * 1000
    # the same statistic on pure noise of the Sources' own errors (seeded Monte Carlo)
    rng = np.random.default_rng(12345)
    expected = float(np.mean([_median_star_rms(rng.normal(0.0, err), idx, len(obj_codes))
                              for _ in range(100)])) * 1000
    return {"band": band, "n_stars": int(g["objectId"].nunique()), "n_sources": int(len(g)),
            "pa1_mmag": pa1, "expected_mmag": expected, "ratio": pa1 / expected if expected else np.nan}


def _median_star_rms(values, idx, n_stars) -> float:
    """Median over stars of each star's RMS about its mean (``n/(n-1)`` corrected)."""
    n = np.bincount(idx, minlength=n_stars).astype(float)
    mean = np.bincount(idx, weights=values, minlength=n_stars) / n
    dev2 = np.bincount(idx, weights=(values - mean[idx]) ** 2, minlength=n_stars) / (n - 1)
    return float(np.median(np.sqrt(dev2)))


def astrometric_repeatability(objects, sources, min_snr: float = 50.0) -> dict:
    """RMS [mas] of bright-star Source positions about their Object mean, and its expectation."""
    parts = [_bright_star_sources(objects, sources, b, min_snr) for b in sorted(sources["band"].unique())]
    s = pd.concat(parts) if parts else sources.iloc[:0]
    if len(s) < 4:
        return {"n_stars": 0, "rms_mas": np.nan, "expected_mas": np.nan, "ratio": np.nan}
    n = s.groupby("objectId")["ra"].transform("size").to_numpy()
    cosd = np.cos(np.radians(s["dec"].to_numpy()))
    dra = (s["ra"] - s.groupby("objectId")["ra"].transform("mean")).to_numpy() * cosd
    ddec = (s["dec"] - s.groupby("objectId")["dec"].transform("mean")).to_numpy()
    corr = np.sqrt(n / (n - 1))
    rms = float(np.sqrt(np.mean((dra * corr) ** 2 + (ddec * corr) ** 2))) * MAS_PER_DEG
    expected = float(np.sqrt(np.mean(s["raErr"] ** 2 + s["decErr"] ** 2))) * MAS_PER_DEG
    return {"n_stars": int(s["objectId"].nunique()), "rms_mas": rms, "expected_mas": expected,
            "ratio": rms / expected if expected else np.nan}
