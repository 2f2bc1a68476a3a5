"""QA plots (matplotlib, Agg backend): each function writes one PNG and returns its path."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..products import BAD_FOR_AGGREGATES  # noqa: E402
from ..units import MAS_PER_DEG, njy_to_abmag  # noqa: E402


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return str(path)


def sky_density(objects, path):
    """Object density on the sky (RA increasing to the left, as on the sky)."""
    fig, ax = plt.subplots(figsize=(6, 5))
    hb = ax.hexbin(objects["coord_ra"], objects["coord_dec"], gridsize=40, mincnt=1, cmap="viridis")
    fig.colorbar(hb, ax=ax, label="objects per cell")
    ax.invert_xaxis()
    ax.set_xlabel("RA [deg]")
    ax.set_ylabel("Dec [deg]")
    ax.set_title("Sky coverage and density")
    return _save(fig, path)


def per_frame(ccd, path):
    """Zero point, seeing and astrometric RMS of every frame."""
    fig, axes = plt.subplots(3, 1, figsize=(7, 7), sharex=True)
    x = np.arange(len(ccd))
    for ax, col, label, scale in zip(axes, ["zeroPoint", "seeing", "astromRms"],
                                     ["zero point [mag]", "seeing [arcsec]", "astrometric RMS [mas]"], [1, 1, 1000]):
        for band in sorted(ccd["band"].unique()):
            sel = (ccd["band"] == band).to_numpy()
            ax.plot(x[sel], ccd[col].to_numpy()[sel] * scale, "o", label=band)
        ax.set_ylabel(label)
    axes[0].legend(loc="best", fontsize=8)
    axes[-1].set_xticks(x, [f"{v}/{d}" for v, d in zip(ccd["visit"], ccd["detector"])], rotation=90, fontsize=6)
    axes[-1].set_xlabel("visit/detector")
    return _save(fig, path)


def repeatability(objects, sources, bands, path):
    """Per-star magnitude RMS against mean magnitude, with the noise-only expectation."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    stars = set(objects.loc[objects["refExtendedness"] < 0.5, "objectId"])
    good = sources[((sources["flags"] & int(BAD_FOR_AGGREGATES)) == 0) & (sources["psfFlux"] > 0)
                   & sources["objectId"].isin(stars)]
    for band in bands:
        s = good[good["band"] == band].assign(mag=lambda d: njy_to_abmag(d["psfFlux"]),
                                              err=lambda d: 1.0857 * d["psfFluxErr"] / d["psfFlux"])
        g = s.groupby("objectId").agg(mag=("mag", "mean"), rms=("mag", "std"), err=("err", "median"), n=("mag", "size"))
        g = g[g["n"] >= 2]
        ax.semilogy(g["mag"], g["rms"] * 1000, ".", alpha=0.6, label=f"{band} stars")
        order = np.argsort(g["mag"].to_numpy())
        ax.semilogy(g["mag"].to_numpy()[order], g["err"].to_numpy()[order] * 1000, "-", lw=1, label=f"{band} noise only")
    ax.set_xlabel("mean AB magnitude")
    ax.set_ylabel("RMS about the mean [mmag]")
    ax.set_title("Photometric repeatability (PA1)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def astrometric_residuals(objects, sources, path):
    """Source positions about their Object's mean position, for stars, in mas."""
    fig, ax = plt.subplots(figsize=(5, 5))
    stars = set(objects.loc[objects["refExtendedness"] < 0.5, "objectId"])
    s = sources[sources["objectId"].isin(stars) & (sources["snr"] >= 20)]
    o = objects.set_index("objectId").loc[s["objectId"]]
    dra = (s["ra"].to_numpy() - o["coord_ra"].to_numpy()) * np.cos(np.radians(s["dec"].to_numpy())) * MAS_PER_DEG
    ddec = (s["dec"].to_numpy() - o["coord_dec"].to_numpy()) * MAS_PER_DEG
    ax.plot(dra, ddec, ".", ms=3, alpha=0.5)
    lim = max(5.0, float(np.nanpercentile(np.hypot(dra, ddec), 99))) if len(dra) else 5.0
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("dRA cos(Dec) [mas]")
    ax.set_ylabel("dDec [mas]")
    ax.set_title("Astrometric residuals, stars S/N >= 20")
    return _save(fig, path)
