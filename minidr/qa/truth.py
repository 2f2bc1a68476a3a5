"""Compare measured catalogs with the truth that ``minidr simulate`` writes.

Used by the tests (with the thresholds of the issues) and by ``minidr qa`` when a release
came from a simulated survey. All functions take pandas DataFrames / numpy arrays.

Definitions (per frame, in pixel space of the assembled detector):

* expected S/N of a truth source: that of a PSF fit, ``F / sqrt(F + A (sky + rn^2))`` with
  ``F`` its flux in electrons and ``A = 1 / sum(P^2)`` the noise-equivalent area of the
  simulated Moffat PSF (its own FWHM, the frame's beta; :func:`psf_noise_area`). A Gaussian
  of the same FWHM has 1.4-1.9x less area and overstated the S/N by 20-40% (measured on the
  sample: S/N of a true-PSF fit / the Gaussian figure = 0.74-0.83, 10-90%);
* blended: another truth object within ``blend_radius`` that is brighter;
* a detection matches a truth source when it is the nearest within ``match_radius``.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

PIXEL_SCALE = 0.2  # arcsec/pixel of the simulated camera


def psf_noise_area(fwhm_pix, beta=None):
    """Noise-equivalent area ``1 / sum(P^2)`` [pixels] of a PSF of ``fwhm_pix``: a Moffat of
    index ``beta`` (``pi alpha^2 (2 beta - 1) / (beta - 1)^2``), or a Gaussian
    (``4 pi sigma^2``) when ``beta`` is None. A PSF fit's variance is ``area * (sky + rn^2)``
    on a sky-dominated source; the simulator's Moffats (beta 2.5-4) have 1.4-1.9x the
    Gaussian's area."""
    fwhm = np.asarray(fwhm_pix, dtype=float)
    if beta is None:
        return 4.0 * np.pi * (fwhm / 2.3548) ** 2
    beta = np.asarray(beta, dtype=float)
    alpha = fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
    return np.pi * alpha**2 * (2.0 * beta - 1.0) / (beta - 1.0) ** 2


def expected_snr(flux_e, fwhm_pix, sky_e, read_noise_e=6.0, beta=None):
    """Expected PSF S/N of point sources of ``flux_e`` electrons on a frame: that of a PSF
    fit, ``F / sqrt(F + area * (sky + rn^2))`` with the PSF's noise-equivalent area
    (:func:`psf_noise_area`: Moffat of index ``beta``, Gaussian when None)."""
    area = psf_noise_area(fwhm_pix, beta)
    f = np.asarray(flux_e, dtype=float)
    return f / np.sqrt(np.maximum(f, 0) + area * (sky_e + read_noise_e**2))


def _unit(ra, dec):
    ra, dec = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
    return np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])


def sky_truth_ids(ra, dec, truth_objects, radius_arcsec=1.0):
    """truthId of the nearest truth object within ``radius_arcsec`` of each position, else -1.

    Matching on the sky (not in one frame's pixels) also finds the truth of sources whose
    centre lies just off the detector.
    """
    if len(ra) == 0:
        return np.zeros(0, dtype=np.int64)
    chord = 2 * np.sin(np.radians(radius_arcsec / 3600.0) / 2)
    d, i = cKDTree(_unit(truth_objects["ra"], truth_objects["dec"])).query(_unit(ra, dec), k=1,
                                                                           distance_upper_bound=chord)
    ids = truth_objects["truthId"].to_numpy()
    return np.where(np.isfinite(d), ids[np.minimum(i, len(ids) - 1)], -1).astype(np.int64)


def _nearest(tx, ty, dx, dy, radius):
    """For each truth point, index of the nearest detection within radius (or -1), and distance."""
    if len(dx) == 0:
        return np.full(len(tx), -1), np.full(len(tx), np.inf)
    tree = cKDTree(np.column_stack([dx, dy]))
    d, i = tree.query(np.column_stack([tx, ty]), k=1, distance_upper_bound=radius)
    i = np.where(np.isfinite(d), i, -1)
    return i, d


def frame_match(truth, det, fwhm_pix, sky_e, match_radius_pix=5.0, blend_radius_pix=5.0, beta=None):
    """Match one frame's truth sources (x, y, flux_e, is_star, saturated) with detections (x, y).

    ``snr_exp`` is :func:`expected_snr` with the frame's ``fwhm_pix`` (or, with ``beta``
    given, each source's own ``psf_fwhm`` [arcsec] from the truth when it has one) and the
    Moffat ``beta`` of the frame (Gaussian when None). Returns the truth table with columns
    ``snr_exp``, ``blended``, ``det_index`` (-1 when missed) and ``det_sep`` [pix], and a
    boolean array over detections: has a truth counterpart.
    """
    t = truth.copy()
    tx, ty = t["x"].to_numpy(), t["y"].to_numpy()
    flux = t["flux_e"].to_numpy()
    if beta is not None and "psf_fwhm" in t:
        fwhm_pix = t["psf_fwhm"].to_numpy() / PIXEL_SCALE
    t["snr_exp"] = expected_snr(flux, fwhm_pix, sky_e, beta=beta)
    tree = cKDTree(np.column_stack([tx, ty]))
    blended = np.zeros(len(t), bool)
    for i, js in enumerate(tree.query_ball_point(np.column_stack([tx, ty]), blend_radius_pix)):
        blended[i] = any(flux[j] > flux[i] for j in js if j != i)
    t["blended"] = blended
    dx, dy = det["x"].to_numpy(), det["y"].to_numpy()
    idx, sep = _nearest(tx, ty, dx, dy, match_radius_pix)
    t["det_index"] = idx
    t["det_sep"] = sep
    # purity: a detection is real if any truth source (however faint) lies within the radius
    if len(tx):
        d, _ = cKDTree(np.column_stack([tx, ty])).query(np.column_stack([dx, dy]), k=1)
        real = d <= match_radius_pix
    else:
        real = np.zeros(len(dx), bool)
    return t, real


def _beta(frame):
    """The Moffat index of a truth frame (None: a Gaussian PSF) ."""
    return float(frame["moffat_beta"].iloc[0]) if "moffat_beta" in frame else None


def detection_metrics(sources, truth_sources, truth_frames, truth_objects, truth_cosmics=None):
    """Per-frame detection and measurement quality of ``sources`` (Source rows) against truth.

    Returns a dict: completeness of unblended, unsaturated stars with expected S/N >= 10,
    purity, astrometric residuals of bright stars [mas], PSF flux scale of bright stars,
    robust std of normalised flux residuals, number of detections on cosmic rays.
    """
    from ..units import MAS_PER_DEG

    obj = truth_objects.set_index("truthId")
    comp_hit = comp_all = 0
    n_det = n_real = 0
    astro, ratio, pulls, cr_hits = [], [], [], 0
    for (visit, det), fr in truth_frames.groupby(["visit", "detector"]):
        s = sources[(sources["visit"] == visit) & (sources["detector"] == det)].reset_index(drop=True)
        if len(s) == 0:
            continue
        tr = truth_sources[(truth_sources["visit"] == visit) & (truth_sources["detector"] == det)].reset_index(drop=True)
        fwhm_pix = float(fr["psf_fwhm"].iloc[0]) / PIXEL_SCALE
        t, real = frame_match(tr, s, fwhm_pix, float(fr["sky"].iloc[0]), beta=_beta(fr))
        n_det += len(s)
        n_real += int((real | (sky_truth_ids(s["ra"], s["dec"], truth_objects) >= 0)).sum())
        sel = t["is_star"] & ~t["blended"] & ~t["saturated"] & (t["snr_exp"] >= 10)
        comp_all += int(sel.sum())
        comp_hit += int((t.loc[sel, "det_index"] >= 0).sum())
        matched = t[(t["det_index"] >= 0) & t["is_star"] & ~t["blended"] & ~t["saturated"]]
        m = s.iloc[matched["det_index"].to_numpy()]
        good = (m["flags"].to_numpy() & 0b11011) == 0  # not saturated/edge/cr/bad
        bright = (matched["snr_exp"].to_numpy() >= 50) & good
        tra = obj.loc[matched["truthId"].to_numpy(), "ra"].to_numpy()
        tdec = obj.loc[matched["truthId"].to_numpy(), "dec"].to_numpy()
        dra = (m["ra"].to_numpy() - tra) * np.cos(np.radians(tdec))
        ddec = m["dec"].to_numpy() - tdec
        astro.append(np.hypot(dra, ddec)[bright] * MAS_PER_DEG)
        ratio.append((m["psfFlux"].to_numpy() / matched["flux_nJy"].to_numpy())[bright])
        faint_ok = good & (matched["snr_exp"].to_numpy() >= 5)
        pulls.append(((m["psfFlux"].to_numpy() - matched["flux_nJy"].to_numpy()) / m["psfFluxErr"].to_numpy())[faint_ok])
        if truth_cosmics is not None and len(truth_cosmics):
            cr = truth_cosmics[(truth_cosmics["visit"] == visit) & (truth_cosmics["detector"] == det)]
            if len(cr):
                dtree = cKDTree(np.column_stack([s["x"], s["y"]]))
                ttree = cKDTree(np.column_stack([tr["x"], tr["y"]])) if len(tr) else None
                for cx, cy in zip(cr["x"], cr["y"]):
                    if dtree.query_ball_point([cx, cy], 2.0):
                        if ttree is None or not ttree.query_ball_point([cx, cy], 5.0):
                            cr_hits += 1
    astro = np.concatenate(astro) if astro else np.zeros(0)
    ratio = np.concatenate(ratio) if ratio else np.zeros(0)
    pulls = np.concatenate(pulls) if pulls else np.zeros(0)
    pulls = pulls[np.isfinite(pulls)]
    robust_std = 1.4826 * np.median(np.abs(pulls - np.median(pulls))) if len(pulls) else np.nan
    return {
        "completeness_snr10": comp_hit / comp_all if comp_all else np.nan,
        "n_truth_snr10": comp_all,
        "purity": n_real / n_det if n_det else np.nan,
        "n_detections": n_det,
        "astrom_median_mas": float(np.median(astro)) if len(astro) else np.nan,
        "astrom_p90_mas": float(np.percentile(astro, 90)) if len(astro) else np.nan,
        "n_bright": int(len(astro)),
        "flux_scale_bright": float(np.median(ratio)) if len(ratio) else np.nan,
        "flux_pull_robust_std": float(robust_std),
        "n_pull": int(len(pulls)),
        "cosmic_ray_detections": int(cr_hits),
    }


def object_metrics(objects, sources, truth_sources, truth_frames, truth_objects, bands):
    """Association quality of a release against truth.

    * completeness: unblended stars detected with expected S/N >= 10 on at least one frame
      that are recovered as an Object (one of their Sources has an objectId);
    * split fraction: truth stars whose Sources went to two or more Objects;
    * purity: Objects with 2+ detections whose Sources all belong to one truth object
      (Sources are matched to truth objects on the sky within 1 arcsec);
    * variability: fraction of detectably variable stars above the chi2 threshold that
      flags 2% of constant stars;
    * refExtendedness: fraction right for Objects with S/N > 30, and per class.
    """
    src = sources.reset_index(drop=True)
    tid = sky_truth_ids(src["ra"].to_numpy(), src["dec"].to_numpy(), truth_objects)
    src = src.assign(truthId=tid)
    obj = objects.set_index("objectId")
    tobj = truth_objects.set_index("truthId")
    stars = set(truth_objects.loc[truth_objects["is_star"], "truthId"])

    # completeness over stars that truth says are bright enough on some frame, not blended
    detectable = set()
    for (visit, det), fr in truth_frames.groupby(["visit", "detector"]):
        tr = truth_sources[(truth_sources["visit"] == visit) & (truth_sources["detector"] == det)]
        if not len(tr):
            continue
        t, _ = frame_match(tr, tr.iloc[:0].assign(x=[], y=[]), float(fr["psf_fwhm"].iloc[0]) / PIXEL_SCALE,
                           float(fr["sky"].iloc[0]), beta=_beta(fr))
        ok = t["is_star"] & ~t["blended"] & ~t["saturated"] & (t["snr_exp"] >= 10)
        detectable.update(t.loc[ok, "truthId"].tolist())
    matched = src[src["truthId"] >= 0]
    found = set(matched["truthId"])
    completeness = len(detectable & found) / len(detectable) if detectable else np.nan

    per_truth = matched.groupby("truthId")["objectId"].nunique()
    star_counts = per_truth[per_truth.index.isin(stars)]
    split = float((star_counts > 1).mean()) if len(star_counts) else np.nan

    multi = src.groupby("objectId").filter(lambda g: len(g) >= 2)
    pure = multi.groupby("objectId")["truthId"].agg(lambda v: (v >= 0).all() and v.nunique() == 1)
    purity = float(pure.mean()) if len(pure) else np.nan

    # variability: chi2 per degree of freedom in the best-sampled band
    main = max(bands, key=lambda b: obj[f"{b}_psfFluxNdata"].sum())
    best = matched.groupby("objectId")["truthId"].agg(lambda v: v.mode().iloc[0])
    o = obj.loc[best.index].assign(truthId=best.to_numpy())
    o = o[o["truthId"].isin(stars) & (o[f"{main}_psfFluxNdata"] >= 3)]
    dof = o[f"{main}_psfFluxNdata"] - 1
    red = o[f"{main}_psfFluxChi2"] / dof
    tv = tobj.loc[o["truthId"]]
    snr = o[f"{main}_psfFluxMean"] / o[f"{main}_psfFluxMeanErr"] * np.sqrt(o[f"{main}_psfFluxNdata"])
    amp = tv["var_amplitude"].fillna(0).to_numpy()
    is_var = tv["is_variable"].to_numpy().astype(bool)
    # detectably variable: amplitude (mag) well above the per-point noise (mag)
    per_point_mag_err = 1.0857 * np.sqrt(o[f"{main}_psfFluxNdata"]) / snr
    detectable_var = is_var & (amp > 5 * per_point_mag_err.to_numpy())
    constant = ~is_var
    if constant.sum() >= 10:
        thr = np.nanpercentile(red[constant], 98)
        var_recall = float((red[detectable_var] > thr).mean()) if detectable_var.sum() else np.nan
    else:
        thr, var_recall = np.nan, np.nan

    # refExtendedness against truth class, for S/N > 30 objects
    o_all = obj.loc[best.index].assign(truthId=best.to_numpy())
    flux_cols = [f"{b}_psfFluxMean" for b in bands]
    err_cols = [f"{b}_psfFluxMeanErr" for b in bands]
    osnr = np.nanmax(np.column_stack([o_all[f] / o_all[e] for f, e in zip(flux_cols, err_cols)]), axis=1)
    sel = osnr > 30
    truth_ext = ~tobj.loc[o_all["truthId"], "is_star"].to_numpy().astype(bool)
    pred_ext = o_all["refExtendedness"].to_numpy() >= 0.5
    right = pred_ext[sel] == truth_ext[sel]
    return {
        "object_completeness_snr10": completeness,
        "n_detectable_stars": len(detectable),
        "split_fraction": split,
        "object_purity_2plus": purity,
        "variable_recall": var_recall,
        "chi2_threshold_per_dof": float(thr),
        "n_detectable_variables": int(detectable_var.sum()),
        "extendedness_accuracy_snr30": float(right.mean()) if sel.any() else np.nan,
        "extendedness_accuracy_stars": float(right[~truth_ext[sel]].mean()) if (~truth_ext[sel]).any() else np.nan,
        "extendedness_accuracy_galaxies": float(right[truth_ext[sel]].mean()) if truth_ext[sel].any() else np.nan,
    }
