"""Association: synthetic surveys with planted truth, a naive reference, shuffles, sky edges."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from minidr.associate import associate, link
from minidr.config import AssociationConfig
from minidr.errors import InputError
from minidr.products import BAD_FOR_AGGREGATES, SourceFlag, ccd_visit_id, source_id
from minidr.sky.healpix import degrade, healpix29

MAS = 1.0 / 3.6e6  # deg
ARCSEC = 1.0 / 3600.0
BANDS = ["g", "r", "i"]


# --- synthetic survey ---------------------------------------------------------------------

def _unit(ra, dec):
    ra, dec = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], -1)


def _offset(ra, dec, dra_deg, ddec_deg):
    """Small tangent-plane offsets (deg on sky) applied to positions (deg)."""
    return (ra + dra_deg / np.cos(np.radians(dec))) % 360.0, dec + ddec_deg


def make_truth(rng, n, ra0, dec0, half, n_pairs=0, min_sep=4.0):
    """Truth stars in a box of half-size ``half`` deg around (ra0, dec0), no two closer than
    ``min_sep`` arcsec, plus ``n_pairs`` companions at 1.5-3 arcsec."""
    ra, dec = _offset(np.full(3 * n, ra0), np.full(3 * n, dec0),
                      rng.uniform(-half, half, 3 * n), rng.uniform(-half, half, 3 * n))
    u = _unit(ra, dec)
    from scipy.spatial import cKDTree
    tree = cKDTree(u)
    keep = np.ones(3 * n, bool)
    chord = 2 * np.sin(np.radians(min_sep / 3600) / 2)
    for i, j in sorted(tree.query_pairs(chord)):
        if keep[i] and keep[j]:
            keep[j] = False
    ra, dec = ra[keep][:n], dec[keep][:n]
    if n_pairs:
        idx = rng.choice(ra.size, n_pairs, replace=False)
        sep = rng.uniform(1.5, 3.0, n_pairs) * ARCSEC
        pa_ = rng.uniform(0, 2 * np.pi, n_pairs)
        cra, cdec = _offset(ra[idx], dec[idx], sep * np.sin(pa_), sep * np.cos(pa_))
        ra, dec = np.r_[ra, cra], np.r_[dec, cdec]
    m = ra.size
    mag = rng.uniform(17.0, 23.5, m)
    variable = rng.random(m) < 0.05
    amp = np.where(variable, rng.uniform(0.1, 0.5, m), 0.0)
    return {"ra": ra, "dec": dec, "mag": mag, "variable": variable, "amp": amp}


def make_sources(rng, truth, n_visits=12, n_det=4, half=0.1, ra0=None, dec0=None, flag_frac=0.03):
    """Sources of a dithered survey: each visit has ``n_det`` detectors tiling the field
    (2x2 quadrants, dithered by up to 20%), a band cycling g, r, i; astrometric noise 10-50 mas."""
    ra0 = float(np.median(truth["ra"])) if ra0 is None else ra0
    dec0 = float(np.median(truth["dec"])) if dec0 is None else dec0
    # tangent-plane offsets of truth from the field centre (deg)
    dra = ((truth["ra"] - ra0 + 180.0) % 360.0 - 180.0) * np.cos(np.radians(truth["dec"]))
    ddec = truth["dec"] - dec0
    m = truth["ra"].size
    out = {k: [] for k in ("sourceId", "ccdVisitId", "visit", "detector", "band", "midpointMjdTai", "ra",
                           "dec", "raErr", "decErr", "psfFlux", "psfFluxErr", "flags", "extendedness", "snr",
                           "truth")}
    for v in range(n_visits):
        visit = 1000 + v
        band = BANDS[v % 3]
        mjd = 60000.0 + 0.37 * v
        sx, sy = rng.uniform(-0.2, 0.2, 2) * half
        for d in range(n_det):
            qx, qy = (d % 2) * 2 - 1, (d // 2) * 2 - 1  # quadrants
            x0 = sx + (0.0 if qx > 0 else -half)
            y0 = sy + (0.0 if qy > 0 else -half)
            on = (dra >= x0) & (dra < x0 + half) & (ddec >= y0) & (ddec < y0 + half)
            flux_true = 10 ** (-0.4 * (truth["mag"] - 31.4))
            phase = rng.uniform(0, 2 * np.pi, m)
            flux = flux_true * (1 + truth["amp"] * np.sin(phase))
            err = np.sqrt(flux + (10 ** (-0.4 * (24.5 - 31.4)) / 5) ** 2)  # sky-limited near 24.5 (5 sigma)
            snr = flux / err
            det = on & (snr > 5) & (rng.random(m) < 0.97)
            idx = np.flatnonzero(det)
            rng.shuffle(idx)
            k = idx.size
            sig = np.clip(30.0 * 50.0 / snr[idx], 10.0, 50.0) * MAS
            r, dd = _offset(truth["ra"][idx], truth["dec"][idx], rng.normal(0, 1, k) * sig, rng.normal(0, 1, k) * sig)
            f = flux[idx] + rng.normal(0, 1, k) * err[idx]
            flags = np.zeros(k, np.int32)
            bad = rng.random(k) < flag_frac
            flags[bad] = rng.choice([SourceFlag.SATURATED, SourceFlag.EDGE, SourceFlag.CR, SourceFlag.BAD], bad.sum())
            f[bad] *= rng.uniform(0.3, 3.0, bad.sum())  # flagged fluxes are wrong
            blended = rng.random(k) < 0.02
            flags[blended] |= SourceFlag.BLENDED
            cv = int(ccd_visit_id(visit, d))
            out["sourceId"].append(source_id(cv, np.arange(k)))
            out["ccdVisitId"].append(np.full(k, cv, np.int64))
            out["visit"].append(np.full(k, visit, np.int64))
            out["detector"].append(np.full(k, d, np.int64))
            out["band"].append(np.full(k, band))
            out["midpointMjdTai"].append(np.full(k, mjd))
            out["ra"].append(r)
            out["dec"].append(dd)
            out["raErr"].append(sig)
            out["decErr"].append(sig)
            out["psfFlux"].append(f)
            out["psfFluxErr"].append(err[idx])
            out["flags"].append(flags)
            out["extendedness"].append(np.zeros(k))
            out["snr"].append(snr[idx])
            out["truth"].append(idx)
    cols = {k: np.concatenate(v) for k, v in out.items()}
    truth_of_row = cols.pop("truth")
    return pa.table(cols), truth_of_row


@pytest.fixture(scope="module")
def survey():
    rng = np.random.default_rng(42)
    truth = make_truth(rng, 3000, 10.0, -30.0, 0.1, n_pairs=150)
    table, tr = make_sources(rng, truth, half=0.1)
    res = associate(table, BANDS, AssociationConfig())
    return truth, table, tr, res


# --- accuracy on the synthetic survey ---------------------------------------------------

def test_every_source_has_an_object_and_ids_are_dense(survey):
    _truth, table, _tr, res = survey
    assert res.object_ids.shape == (table.num_rows,)
    assert res.object_ids.dtype == np.int64
    ids = res.objects.column("objectId").to_numpy()
    assert np.array_equal(ids, np.arange(1, ids.size + 1))
    assert set(np.unique(res.object_ids)) == set(ids)
    hp = healpix29(res.objects["coord_ra"].to_numpy(), res.objects["coord_dec"].to_numpy())
    assert np.all(np.diff(hp) >= 0)  # objectId order is _healpix_29 order
    nd = res.objects.column("nDetections").to_numpy()
    assert np.array_equal(nd, np.bincount(res.object_ids, minlength=ids.size + 1)[1:])
    assert res.objects.column_names[:9] == ["objectId", "coord_ra", "coord_dec", "coord_raErr", "coord_decErr",
                                            "nDetections", "refExtendedness", "firstMjd", "lastMjd"]
    assert res.objects.column_names[9:15] == ["g_psfFluxMean", "g_psfFluxMeanErr", "g_psfFluxSigma",
                                              "g_psfFluxChi2", "g_psfFluxNdata", "g_psfMag"]


def test_no_two_sources_of_one_frame_in_an_object(survey):
    _, table, _, res = survey
    cv = table.column("ccdVisitId").to_numpy()
    pairs = np.unique(np.stack([res.object_ids, cv], 1), axis=0)
    assert pairs.shape[0] == table.num_rows


def test_splits_and_purity(survey):
    _truth, _table, tr, res = survey
    oid = res.object_ids
    # split: a truth star whose sources went to more than one object
    per_truth = {}
    for t, o in zip(tr, oid):
        per_truth.setdefault(t, set()).add(o)
    split = sum(len(s) > 1 for s in per_truth.values())
    assert split / len(per_truth) <= 0.004, split
    # purity of objects with 2+ detections
    per_obj = {}
    for t, o in zip(tr, oid):
        per_obj.setdefault(o, []).append(t)
    multi = [v for v in per_obj.values() if len(v) >= 2]
    pure = sum(len(set(v)) == 1 for v in multi)
    assert pure / len(multi) >= 0.99
    # close pairs (1.5-3 arcsec) stay two objects
    assert len(per_obj) >= 0.996 * len(per_truth)


def test_positions_close_to_truth(survey):
    truth, _table, tr, res = survey
    oid = res.object_ids
    first = np.unique(oid, return_index=True)[1]
    t = tr[first]
    o = res.objects.take(pa.array(oid[first] - 1))
    sep = np.degrees(np.arccos(np.clip(np.sum(_unit(truth["ra"][t], truth["dec"][t])
                                              * _unit(o["coord_ra"].to_numpy(), o["coord_dec"].to_numpy()), -1), -1, 1)))
    err = np.hypot(o["coord_raErr"].to_numpy(), o["coord_decErr"].to_numpy())
    # normalised offsets: median of a 2-D Rayleigh with sigma 1/sqrt(2) per axis is ~0.83
    assert np.median(sep / err) < 1.2
    assert np.max(sep) < 0.1 * ARCSEC


def test_band_statistics_match_direct_computation(survey):
    _truth, table, _tr, res = survey
    oid = res.object_ids
    o = int(np.argmax(res.objects["nDetections"].to_numpy())) + 1
    sel = oid == o
    band = table.column("band").to_numpy(zero_copy_only=False)
    flags = table.column("flags").to_numpy()
    f = table.column("psfFlux").to_numpy()
    e = table.column("psfFluxErr").to_numpy()
    row = res.objects.slice(o - 1, 1).to_pylist()[0]
    for b in BANDS:
        g = sel & (band == b) & ((flags & int(BAD_FOR_AGGREGATES)) == 0)
        w = 1 / e[g] ** 2
        mean = np.sum(w * f[g]) / np.sum(w)
        assert row[f"{b}_psfFluxNdata"] == g.sum()
        assert row[f"{b}_psfFluxMean"] == pytest.approx(mean, rel=1e-12)
        assert row[f"{b}_psfFluxMeanErr"] == pytest.approx(1 / np.sqrt(np.sum(w)), rel=1e-12)
        assert row[f"{b}_psfFluxChi2"] == pytest.approx(np.sum(w * (f[g] - mean) ** 2), rel=1e-9)
        assert row[f"{b}_psfFluxSigma"] == pytest.approx(np.std(f[g], ddof=1), rel=1e-9)
        assert row[f"{b}_psfMag"] == pytest.approx(-2.5 * np.log10(mean) + 31.4, rel=1e-12)
    mjd = table.column("midpointMjdTai").to_numpy()
    assert row["firstMjd"] == mjd[sel].min() and row["lastMjd"] == mjd[sel].max()
    assert row["nDetections"] == sel.sum()
    assert row["refExtendedness"] == 0.0


def test_chi2_finds_variable_stars(survey):
    truth, _table, tr, res = survey
    oid = res.object_ids
    first = np.unique(oid, return_index=True)[1]
    t_of_obj = tr[first]  # truth star of each object (objects are pure, tested above)
    objs = res.objects
    mag = truth["mag"][t_of_obj]
    flux_true = 10 ** (-0.4 * (mag - 31.4))
    flagged_const = []
    found_var = []
    for b in BANDS:
        chi2 = objs[f"{b}_psfFluxChi2"].to_numpy()
        nd = objs[f"{b}_psfFluxNdata"].to_numpy()
        err = objs[f"{b}_psfFluxMeanErr"].to_numpy() * np.sqrt(np.maximum(nd, 1))  # per-epoch error
        ok = nd >= 3
        thresh = stats.chi2.ppf(0.99, np.maximum(nd - 1, 1))
        is_var = truth["variable"][t_of_obj]
        # detectably variable: rms of the sine (amp/sqrt 2) at least 3x the per-epoch error
        detectable = is_var & (truth["amp"][t_of_obj] * flux_true / np.sqrt(2) > 3 * err)
        flagged_const.append((chi2 > thresh)[ok & ~is_var])
        found_var.append((chi2 > thresh)[ok & detectable])
    flagged_const = np.concatenate(flagged_const)
    found_var = np.concatenate(found_var)
    assert found_var.size >= 50
    assert flagged_const.mean() <= 0.02
    assert found_var.mean() >= 0.85


def test_flagged_sources_are_left_out_of_band_statistics():
    # one object, 6 good r sources at 1000 nJy and one saturated at 5000 nJy
    n = 7
    t = pa.table({
        "sourceId": source_id(ccd_visit_id(np.arange(n) + 1, 0), 0), "ccdVisitId": ccd_visit_id(np.arange(n) + 1, 0),
        "band": ["r"] * n, "midpointMjdTai": 60000.0 + np.arange(n), "ra": np.full(n, 359.99999), "dec": np.full(n, 0.5),
        "raErr": np.full(n, 1e-5), "decErr": np.full(n, 1e-5), "psfFlux": [1000.0] * 6 + [5000.0],
        "psfFluxErr": np.full(n, 10.0), "flags": np.array([0] * 6 + [int(SourceFlag.SATURATED)], np.int32),
        "extendedness": [0.0] * 6 + [1.0], "snr": np.full(n, 100.0)})
    res = associate(t, ["g", "r"], AssociationConfig())
    row = res.objects.to_pylist()
    assert len(row) == 1
    row = row[0]
    assert row["nDetections"] == 7 and row["r_psfFluxNdata"] == 6
    assert row["r_psfFluxMean"] == pytest.approx(1000.0)
    assert row["r_psfFluxChi2"] == pytest.approx(0.0, abs=1e-9)
    assert row["refExtendedness"] == 0.0  # the saturated source's extendedness is not used
    assert row["g_psfFluxNdata"] == 0 and np.isnan(row["g_psfFluxMean"]) and np.isnan(row["g_psfMag"])
    assert row["coord_ra"] == pytest.approx(359.99999, abs=1e-9)


def test_shuffled_input_gives_identical_output(survey):
    _, table, _, res = survey
    perm = np.random.default_rng(7).permutation(table.num_rows)
    res2 = associate(table.take(pa.array(perm)), BANDS, AssociationConfig())
    assert np.array_equal(res2.object_ids, res.object_ids[perm])
    assert res2.objects.schema.equals(res.objects.schema)
    for name in res.objects.column_names:
        a = res.objects[name].to_numpy()
        b = res2.objects[name].to_numpy()
        assert a.tobytes() == b.tobytes(), name


def _snap_to_edges(rng, ra, dec, n, order=10):
    """Move ``n`` positions onto a border of their order-``order`` HEALPix pixel (bisection
    along a random direction), and ``n // 5`` more onto RA = 0."""
    idx = rng.choice(ra.size, n + n // 5, replace=False)
    a, b = idx[:n], idx[n:]
    pa_ = rng.uniform(0, 2 * np.pi, n)
    lo = np.zeros(n)
    hi = np.full(n, 300.0 * ARCSEC)
    p0 = degrade(healpix29(ra[a], dec[a]), order)
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        r, d = _offset(ra[a], dec[a], mid * np.sin(pa_), mid * np.cos(pa_))
        same = degrade(healpix29(r, d), order) == p0
        lo = np.where(same, mid, lo)
        hi = np.where(same, hi, mid)
    ra, dec = ra.copy(), dec.copy()
    ra[a], dec[a] = _offset(ra[a], dec[a], hi * np.sin(pa_), hi * np.cos(pa_))
    ra[b] = rng.normal(0, 0.02, b.size) * ARCSEC % 360.0
    return ra, dec


def test_objects_straddling_partition_edges_are_not_split():
    """A field at RA 0 (wrap), dec 45, with stars planted on order-10 pixel borders and on RA 0."""
    rng = np.random.default_rng(3)
    truth = make_truth(rng, 1500, 0.0, 45.0, 0.1)
    truth["ra"], truth["dec"] = _snap_to_edges(rng, truth["ra"], truth["dec"], 200)
    # drop stars that the snapping moved close to another
    u = _unit(truth["ra"], truth["dec"])
    from scipy.spatial import cKDTree
    close = set(np.ravel(list(cKDTree(u).query_pairs(2 * np.sin(np.radians(4 / 3600) / 2)))))
    keep = np.array([i not in close for i in range(u.shape[0])])
    truth = {k: v[keep] for k, v in truth.items()}
    table, tr = make_sources(rng, truth, half=0.1, ra0=0.0, dec0=45.0, flag_frac=0.0)
    ra = table.column("ra").to_numpy()
    dec = table.column("dec").to_numpy()
    p10 = degrade(healpix29(ra, dec), 10)
    res = associate(table, BANDS, AssociationConfig())
    order = np.argsort(tr, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(tr[order]) != 0])
    straddle = wrap = 0
    for group in np.split(order, starts[1:]):
        across_wrap = np.unique(ra[group] < 180).size > 1
        if np.unique(p10[group]).size > 1 or across_wrap:
            straddle += 1
            wrap += across_wrap
            assert np.unique(res.object_ids[group]).size == 1
    assert straddle >= 100 and wrap >= 10
    assert np.unique(res.object_ids).size == np.unique(tr).size


# --- geometry: link() against brute force -------------------------------------------------

def _naive_link(ra, dec, radius_arcsec):
    u = _unit(ra, dec)
    n = ra.size
    chord2 = (2 * np.sin(np.radians(radius_arcsec / 3600) / 2)) ** 2
    d2 = np.sum((u[:, None, :] - u[None, :, :]) ** 2, -1)
    label = np.arange(n)
    changed = True
    adj = d2 <= chord2
    while changed:
        new = np.array([label[adj[i]].min() for i in range(n)])
        changed = not np.array_equal(new, label)
        label = new
    return label


@settings(max_examples=60, deadline=None)
@given(
    st.floats(0.0, 360.0), st.floats(-90.0, 90.0), st.floats(0.3, 30.0), st.integers(2, 60),
    st.integers(0, 2**31),
)
def test_link_matches_brute_force(ra0, dec0, spread_arcsec, n, seed):
    """Clumps anywhere on the sky (RA wrap, poles): components equal brute-force FoF."""
    rng = np.random.default_rng(seed)
    radius = 1.0
    centres = rng.integers(0, max(1, n // 4), n)
    cra = rng.normal(0, spread_arcsec, n // 4 + 1) / 3600
    cdec = rng.normal(0, spread_arcsec, n // 4 + 1) / 3600
    dra = cra[centres] + rng.normal(0, 0.5, n) / 3600
    ddec = cdec[centres] + rng.normal(0, 0.5, n) / 3600
    dec = np.clip(dec0 + ddec, -90, 90)
    ra = (ra0 + dra / max(np.cos(np.radians(dec0)), 1e-3)) % 360.0
    got = link(ra, dec, radius)
    assert np.array_equal(got, _naive_link(ra, dec, radius))


def test_link_across_wrap_and_pole():
    ra = np.array([359.99999, 0.00001, 180.0, 0.0, 90.0, 270.0])
    dec = np.array([10.0, 10.0, 89.99995, 89.99995, -89.9999, -89.9999])
    lab = link(ra, dec, 1.0)
    assert lab[0] == lab[1]
    assert lab[2] == lab[3]           # 0.36 arcsec apart across the pole
    assert lab[4] == lab[5]           # 0.72 arcsec apart across the south pole
    assert len(set(lab)) == 3


# --- input checks -------------------------------------------------------------------------

def test_missing_column_and_duplicate_ids_are_named(survey):
    _, table, _, _ = survey
    with pytest.raises(InputError, match="psfFlux"):
        associate(table.drop_columns(["psfFlux"]), BANDS, AssociationConfig())
    dup = pa.concat_tables([table.slice(0, 5), table.slice(0, 1)])
    with pytest.raises(InputError, match="sourceId .* not unique"):
        associate(dup, BANDS, AssociationConfig())


def test_empty_input_gives_empty_object_table():
    _, _table, _, _ = (None, None, None, None)
    from minidr.associate import object_schema
    empty = pa.table({c: pa.array([], type=t) for c, t in [
        ("sourceId", pa.int64()), ("ccdVisitId", pa.int64()), ("band", pa.string()),
        ("midpointMjdTai", pa.float64()), ("ra", pa.float64()), ("dec", pa.float64()),
        ("raErr", pa.float64()), ("decErr", pa.float64()), ("psfFlux", pa.float64()),
        ("psfFluxErr", pa.float64()), ("flags", pa.int32()), ("extendedness", pa.float64()),
        ("snr", pa.float64())]})
    res = associate(empty, ["r"], AssociationConfig())
    assert res.objects.num_rows == 0 and res.object_ids.size == 0
    assert res.objects.schema.equals(object_schema(["r"]))


@settings(max_examples=40, deadline=None)
@given(st.floats(0.0, 360.0), st.floats(-90.0, 90.0), st.integers(1, 80), st.integers(0, 2**31))
def test_nearest_within_matches_brute_force(ra0, dec0, n, seed):
    """Nearest catalog position within 1 arcsec, anywhere on the sky (RA wrap, poles)."""
    from minidr.associate import kernels
    from minidr.associate.associate import _unit_vectors, zone_sort

    rng = np.random.default_rng(seed)
    r = 1.0 / 3600

    def scatter(m):
        d = np.clip(dec0 + rng.normal(0, 2, m) / 3600, -90, 90)
        a = (ra0 + rng.normal(0, 2, m) / 3600 / max(np.cos(np.radians(dec0)), 1e-3)) % 360.0
        return a, d

    cra, cdec = scatter(n)
    qra, qdec = scatter(50)
    order, ras, zid, zst = zone_sort(cra, cdec, r)
    x, y, z = _unit_vectors(cra[order], cdec[order])
    best, _ = kernels.nearest_within(zid, zst, ras, x, y, z, qra, qdec, r, r)
    got = np.where(best >= 0, order[np.maximum(best, 0)], -1)
    d2 = np.sum((_unit(qra, qdec)[:, None, :] - _unit(cra, cdec)[None, :, :]) ** 2, -1)
    chord2 = (2 * np.sin(np.radians(r) / 2)) ** 2
    want = np.where(d2.min(1) <= chord2, d2.argmin(1), -1)
    # equal distances to rounding: compare the distances, not only the indices
    ok = (got == want) | ((got >= 0) & (want >= 0) & np.isclose(d2[np.arange(50), got], d2[np.arange(50), want], rtol=1e-9))
    assert np.all(ok)


def _line_table(offsets_arcsec, frames, dec=20.0):
    """Sources along RA at given offsets (arcsec on sky) in given frames (visit numbers)."""
    n = len(offsets_arcsec)
    frames = np.asarray(frames)
    cv = ccd_visit_id(frames, 0)
    idx = np.array([np.sum(frames[:i] == frames[i]) for i in range(n)])
    off = np.asarray(offsets_arcsec, float) / 3600 / np.cos(np.radians(dec))
    return pa.table({
        "sourceId": source_id(cv, idx), "ccdVisitId": cv, "band": ["r"] * n, "midpointMjdTai": 60000.0 + frames,
        "ra": 100.0 + off, "dec": np.full(n, dec), "raErr": np.full(n, 0.02 / 3600), "decErr": np.full(n, 0.02 / 3600),
        "psfFlux": np.full(n, 1000.0), "psfFluxErr": np.full(n, 10.0), "flags": np.zeros(n, np.int32),
        "extendedness": np.zeros(n), "snr": np.full(n, 100.0)})


def test_chain_is_split_at_the_running_mean():
    # friends-of-friends links 0-0.8-1.6 arcsec; the mean after two frames is at 0.4, 1.2 away
    res = associate(_line_table([0.0, 0.8, 1.6], [1, 2, 3]), ["r"], AssociationConfig())
    ids = res.object_ids
    assert ids[0] == ids[1] != ids[2]
    assert res.objects.num_rows == 2


def test_one_frame_pair_within_radius_stays_two_objects_and_greedy_nearest():
    # frame 1: two sources 0.9 arcsec apart; frame 2: one near each; frame 3: one in between
    t = _line_table([0.0, 0.9, 0.1, 0.85, 0.5], [1, 1, 2, 2, 3])
    ids = associate(t, ["r"], AssociationConfig()).object_ids
    assert ids[0] != ids[1]
    assert ids[2] == ids[0] and ids[3] == ids[1]
    assert ids[4] in (ids[0], ids[1])
    # a larger radius merges nothing more within a frame
    ids2 = associate(t, ["r"], AssociationConfig(radius=5.0)).object_ids
    assert ids2[0] != ids2[1]


def _naive_associate(ra, dec, frame, sid, w, radius_arcsec):
    """Slow reference of the whole method: brute-force FoF, then per component and frame,
    greedy one-to-one matching to the objects' running weighted mean positions."""
    u = _unit(ra, dec)
    comp = _naive_link(ra, dec, radius_arcsec)
    chord2 = (2 * np.sin(np.radians(radius_arcsec / 3600) / 2)) ** 2
    obj = np.full(ra.size, -1)
    next_id = 0
    for c in np.unique(comp):
        rows = np.flatnonzero(comp == c)
        rows = rows[np.lexsort((sid[rows], frame[rows]))]
        sums = []  # weighted vector sums of this component's objects
        ids = []
        for f in np.unique(frame[rows]):
            fr = rows[frame[rows] == f]
            means = [s / np.linalg.norm(s) for s in sums]
            pairs = sorted((np.sum((u[r] - m) ** 2), k, o) for k, r in enumerate(fr) for o, m in enumerate(means)
                           if np.sum((u[r] - m) ** 2) <= chord2)
            got = {}
            used = set()
            for _, k, o in pairs:
                if k not in got and o not in used:
                    got[k] = o
                    used.add(o)
            for k, r in enumerate(fr):
                if k not in got:
                    got[k] = len(sums)
                    sums.append(np.zeros(3))
                    ids.append(next_id)
                    next_id += 1
            for k, r in enumerate(fr):
                sums[got[k]] = sums[got[k]] + w[r] * u[r]
                obj[r] = ids[got[k]]
    return obj


@settings(max_examples=25, deadline=None)
@given(st.floats(0.0, 360.0), st.floats(-89.0, 89.0), st.integers(1, 60), st.integers(1, 6), st.integers(0, 2**31))
def test_associate_matches_naive_reference_and_is_order_free(ra0, dec0, n, n_frames, seed):
    rng = np.random.default_rng(seed)
    k = max(1, n // 3)
    cra = rng.normal(0, 2.0, k) / 3600 / np.cos(np.radians(dec0))
    cdec = rng.normal(0, 2.0, k) / 3600
    c = rng.integers(0, k, n)
    dec = dec0 + cdec[c] + rng.normal(0, 0.3, n) / 3600
    ra = (ra0 + cra[c] + rng.normal(0, 0.3, n) / 3600 / np.cos(np.radians(dec0))) % 360.0
    frames = rng.integers(1, n_frames + 1, n)
    cv = ccd_visit_id(frames, 0)
    sid = source_id(cv, np.arange(n))
    err = rng.uniform(0.01, 0.1, n) / 3600
    t = pa.table({"sourceId": sid, "ccdVisitId": cv, "band": ["r"] * n, "midpointMjdTai": 60000.0 + frames, "ra": ra, "dec": dec,
                      "raErr": err, "decErr": err, "psfFlux": np.full(n, 1.0), "psfFluxErr": np.full(n, 1.0),
                      "flags": np.zeros(n, np.int32), "extendedness": np.zeros(n), "snr": np.full(n, 1.0)})
    res = associate(t, ["r"], AssociationConfig())
    want = _naive_associate(ra, dec, cv, sid, 1.0 / err**2, 1.0)
    # same partition of the rows into objects
    pairs = np.unique(np.stack([res.object_ids, want], 1), axis=0)
    assert pairs.shape[0] == np.unique(want).size == np.unique(res.object_ids).size
    perm = rng.permutation(n)
    res2 = associate(t.take(pa.array(perm)), ["r"], AssociationConfig())
    assert np.array_equal(res2.object_ids, res.object_ids[perm])
