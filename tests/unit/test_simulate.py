"""The survey simulator: determinism, raw FITS conventions, and that the pixels carry the truth.

Real files on small surveys (256-384 px detectors); a tiny reference ISR is written here
(per-row overscan, gain, amplifier flips, bias and flat from the simulator's own truth) so the
pixels can be compared with truth_sources and truth_frames.
"""

from __future__ import annotations

import hashlib
import warnings
import math
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from hypothesis import given, settings
from hypothesis import strategies as st

from minidr.errors import InputError
from minidr.simulate import parse_size, simulate
from minidr.simulate import survey as sv
from minidr.simulate.camera import make_camera
from minidr.simulate.sky import make_catalog, moffat_alpha
from minidr.sky.coords import parse_dec, parse_ra

NY, NX = 256, 384   # non-square on purpose: transposes show up

SMALL = dict(n_bias=3, n_dark=2, n_flat=2, star_density=150_000.0, galaxy_density=30_000.0)


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "survey"
    res = simulate(out, visits=2, detectors=2, bands="gr", size=(NY, NX), seed=7, **SMALL)
    return res


def _iraf(text):
    m = re.fullmatch(r"\[(\d+):(\d+),(\d+):(\d+)\]", text)
    return tuple(int(v) for v in m.groups())


def _reduce(path):
    """Minimal reference ISR: per-row overscan median, gain, flips, assembly. Returns (e-, hdr)."""
    with fits.open(path) as hdul:
        ph = hdul[0].header
        amps = [(h.header, h.data.astype(np.float64)) for h in hdul[1:]]
    xs, ys = [], []
    for h, _ in amps:
        x1, x2, y1, y2 = _iraf(h["DETSEC"])
        xs += [x1, x2]
        ys += [y1, y2]
    img = np.zeros((max(ys), max(xs)))
    for h, a in amps:
        dx1, dx2, dy1, dy2 = _iraf(h["DATASEC"])
        bx1, bx2, by1, by2 = _iraf(h["BIASSEC"])
        over = np.median(a[by1 - 1:by2, bx1 - 1:bx2], axis=1)
        data = (a[dy1 - 1:dy2, dx1 - 1:dx2] - over[:, None]) * h["GAIN"]
        x1, x2, y1, y2 = _iraf(h["DETSEC"])
        if x1 > x2:
            data = data[:, ::-1]
            x1, x2 = x2, x1
        if y1 > y2:
            data = data[::-1, :]
            y1, y2 = y2, y1
        img[y1 - 1:y2, x1 - 1:x2] = data
    return img, ph


def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --- determinism ---------------------------------------------------------------------------

def test_same_seed_same_bytes_different_seed_different(tmp_path):
    kw = dict(visits=1, detectors=1, bands="g", size=128, n_bias=1, n_dark=1, n_flat=1, compress=True)
    from minidr._jit import set_threads
    a = simulate(tmp_path / "a", seed=3, **kw)
    set_threads(1)   # the number of threads must not change a byte
    try:
        b = simulate(tmp_path / "b", seed=3, **kw)
    finally:
        set_threads(None)
    c = simulate(tmp_path / "c", seed=4, **kw)
    files_a = sorted(p.relative_to(a.outdir) for p in a.outdir.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b.outdir) for p in b.outdir.rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) == 4 + 6
    for rel in files_a:
        assert _sha(a.outdir / rel) == _sha(b.outdir / rel), rel
    assert _sha(a.science[0]) != _sha(c.science[0])
    assert _sha(a.truth_sources) != _sha(c.truth_sources)


def test_refuses_non_empty_outdir_and_bad_values(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        simulate(tmp_path / "x", size=128)
    with pytest.raises(InputError, match="bands"):
        simulate(tmp_path / "y", bands="gq", size=128)
    with pytest.raises(InputError, match="unknown simulation parameter"):
        simulate(tmp_path / "z", size=128, nonsense=1)


@given(st.integers(32, 3000), st.integers(32, 3000))
def test_parse_size(nx, ny):
    ok = nx >= 64 and ny >= 64 and nx % 2 == 0 and ny % 2 == 0
    if ok:
        assert parse_size(f"{nx}x{ny}") == (ny, nx)
        assert parse_size((ny, nx)) == (ny, nx)
    else:
        with pytest.raises(InputError):
            parse_size(f"{nx}x{ny}")


def test_cli(tmp_path):
    from click.testing import CliRunner

    from minidr.cli import cli
    r = CliRunner().invoke(cli, ["simulate", str(tmp_path / "s"), "--visits", "1", "--detectors", "1",
                                 "--bands", "g", "--size", "128x64", "--ra", "10:00:00",
                                 "--dec", "-05:00:00", "--compress", "-q"])
    assert r.exit_code == 0, r.output
    files = sorted((tmp_path / "s" / "raw" / "science").iterdir())
    assert [f.name for f in files] == ["science-010000-det001.fits.fz"]
    with fits.open(files[0]) as h:
        assert h[1].data.shape == (64, 128 // 2 + 32)
        assert abs(h[0].header["CRVAL1"] - 150.0) < 0.01 and abs(h[0].header["CRVAL2"] + 5.0) < 0.01
    r = CliRunner().invoke(cli, ["simulate", str(tmp_path / "s"), "-q"])
    assert r.exit_code != 0 and "not empty" in str(r.exception)


# --- headers -------------------------------------------------------------------------------

def test_raw_headers_follow_conventions(survey):
    types = {"bias": "zero", "dark": "dark", "flat": "flat", "science": "object"}
    expids = {}
    for kind, want in types.items():
        for path in getattr(survey, kind):
            with fits.open(path) as hdul:
                ph = hdul[0].header
                assert ph["IMAGETYP"] == want
                assert ph["INSTRUME"] == "MINICAM"
                assert isinstance(ph["EXPID"], int) and isinstance(ph["DETECTOR"], int)
                expids.setdefault((ph["EXPID"], ph["DETECTOR"]), path)
                assert ph["EXPTIME"] >= 0 and 60000 < ph["MJD-OBS"] < 62000
                if kind == "bias":
                    assert "FILTER" not in ph
                if kind in ("flat", "science"):
                    assert ph["FILTER"] in "gr"
                namps = len(hdul) - 1
                assert namps in (2, 4)
                det = np.zeros((NY, NX), int)
                for h in hdul[1:]:
                    hh = h.header
                    assert hh["BITPIX"] == 16 and hh["BZERO"] == 32768
                    assert 1.2 <= hh["GAIN"] <= 2.5 and 4 <= hh["RDNOISE"] <= 9
                    assert h.data.dtype == np.uint16 and h.data.max() <= hh["SATURATE"]
                    dx1, dx2, dy1, dy2 = _iraf(hh["DATASEC"])
                    bx1, bx2, _, _ = _iraf(hh["BIASSEC"])
                    assert bx2 - bx1 + 1 >= 32 and bx1 == dx2 + 1 and bx2 == h.data.shape[1]
                    x1, x2, y1, y2 = _iraf(hh["DETSEC"])
                    assert abs(x2 - x1) == dx2 - dx1 and abs(y2 - y1) == dy2 - dy1
                    det[min(y1, y2) - 1:max(y1, y2), min(x1, x2) - 1:max(x1, x2)] += 1
                assert (det == 1).all()  # amplifiers tile the detector exactly once
                if kind == "science":
                    ra, dec = parse_ra(ph["RA"]), parse_dec(ph["DEC"])
                    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d\d", ph["RA"])
                    assert re.fullmatch(r"[+-]\d\d:\d\d:\d\d\.\d", ph["DEC"])
                    assert abs(ra - ph["CRVAL1"]) < 1e-3 and abs(dec - ph["CRVAL2"]) < 1e-3
                    assert ph["CTYPE1"] == "RA---TAN" and ph["CD1_1"] < 0
    assert len(expids) == len(survey.raw_files)  # (EXPID, DETECTOR) unique per file
    # some amplifiers read out backwards, in x and in y
    with fits.open(survey.science[-1]) as hdul:
        detsecs = [_iraf(h.header["DETSEC"]) for h in hdul[1:]]
    assert any(d[0] > d[1] for d in detsecs) and any(d[2] > d[3] for d in detsecs)


# --- pixels vs truth -----------------------------------------------------------------------

def _truth(survey):
    ts = pq.read_table(survey.truth_sources).to_pandas()
    tf = pq.read_table(survey.truth_frames).to_pandas()
    return ts, tf


def _isolated(ts, frame_rows, rad=15.0, ratio=0.003):
    x, y, f = frame_rows.x.values, frame_rows.y.values, frame_rows.flux_e.values
    keep = []
    for i in range(len(x)):
        d = np.hypot(x - x[i], y - y[i])
        near = (d < rad) & (d > 0)
        keep.append(not np.any(f[near] > ratio * f[i]))
    return np.array(keep, bool)


_BIAS: dict = {}


def _calibrated(survey, path, det, band):
    """Science frame in e-: reference ISR minus the master bias (mean of biases), dark, over flat."""
    p = sv.SurveyParams(**{k: v for k, v in _params(survey).items()})
    camera = make_camera(p.detectors, tuple(p.shape), p.seed)
    d = camera.detectors[det - 1]
    key = (str(survey.outdir), det)
    if key not in _BIAS:
        _BIAS[key] = np.mean([_reduce(b)[0] for b in survey.bias if f"det{det:03d}" in b.name], axis=0)
    bias = _BIAS[key]
    img, ph = _reduce(path)
    img = img - bias - sv.dark_map(p, d) * p.exptime
    return img / sv.response_map(p, camera, d, band), ph


def _params(survey):
    import json
    d = json.loads(Path(survey.params).read_text())
    keep = sv.SurveyParams.__dataclass_fields__
    d = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in keep}
    return d


def test_aperture_flux_and_centroid_match_truth(survey):
    """Bright isolated unsaturated stars: aperture sum = flux_e (within noise), the true WCS puts
    them where the light is (windowed centroid within 0.05 px)."""
    ts, tf = _truth(survey)
    cr = pq.read_table(survey.truth_cosmics).to_pandas()
    checked = 0
    for _, fr in tf.iterrows():
        rows = ts[(ts.visit == fr.visit) & (ts.detector == fr.detector)].reset_index(drop=True)
        img, ph = _calibrated(survey, survey.outdir / fr.filename, fr.detector, fr.band)
        fwhm = fr.psf_fwhm / 0.2
        rap = 3.0 * fwhm
        iso = _isolated(ts, rows, rad=rap + 15)
        crs = cr[(cr.visit == fr.visit) & (cr.detector == fr.detector)]
        for k, (x, y) in enumerate(zip(rows.x, rows.y)):
            if np.any(np.hypot(crs.x - x, crs.y - y) < rap + 20):
                iso[k] = False
        sel = rows[iso & rows.is_star & ~rows.saturated & (rows.mag < 20.5)
                   & (rows.x > rap + 12) & (rows.x < NX - rap - 12)
                   & (rows.y > rap + 12) & (rows.y < NY - rap - 12)]
        for _, s in sel.iterrows():
            h = int(rap + 12)
            x0, y0 = int(round(s.x)) - h, int(round(s.y)) - h
            cut = img[y0:y0 + 2 * h + 1, x0:x0 + 2 * h + 1]
            yy, xx = np.mgrid[y0:y0 + 2 * h + 1, x0:x0 + 2 * h + 1]
            r = np.hypot(xx - s.x, yy - s.y)
            ann = (r > rap + 3) & (r < rap + 8)
            sky = np.median(cut[ann])
            ap = r < rap
            flux = np.sum(cut[ap] - sky)
            sigma = math.sqrt(s.flux_e + ap.sum() * (fr.sky + 40.0))
            # Moffat wings beyond 3 FWHM: ~5% for beta 2.5, ~1% for beta 4
            b = fr.moffat_beta
            alpha = moffat_alpha(fwhm, b)
            enclosed = 1.0 - (1.0 + (rap / alpha) ** 2) ** (1.0 - b)
            assert abs(flux - enclosed * s.flux_e) < 4 * sigma + 0.01 * s.flux_e, (s.mag, flux, s.flux_e)
            # windowed centroid
            cx, cy = s.x, s.y
            for _ in range(20):
                wgt = np.exp(-0.5 * ((xx - cx) ** 2 + (yy - cy) ** 2) / (fwhm / 2.355) ** 2)
                box = (np.abs(xx - s.x) < 3 * fwhm) & (np.abs(yy - s.y) < 3 * fwhm)
                v = (cut - sky) * wgt * box
                ncx, ncy = (v * xx).sum() / v.sum(), (v * yy).sum() / v.sum()
                cx, cy = cx + 2 * (ncx - cx), cy + 2 * (ncy - cy)
            tol = 0.05 if s.mag < 19 else 0.12
            assert math.hypot(cx - s.x, cy - s.y) < tol, (s.mag, cx - s.x, cy - s.y)
            checked += 1
    assert checked >= 10


def test_true_wcs_maps_truth_objects(survey):
    ts, tf = _truth(survey)
    to = pq.read_table(survey.truth_objects).to_pandas().set_index("truthId")
    for _, fr in tf.iterrows():
        w = WCS(fits.Header.fromstring(fr.wcs_true, sep="\n"))
        rows = ts[(ts.visit == fr.visit) & (ts.detector == fr.detector)]
        obj = to.loc[rows.truthId.values]
        x, y = w.all_world2pix(obj.ra.values, obj.dec.values, 0, tolerance=1e-10, maxiter=100)
        assert np.max(np.hypot(x - rows.x.values, y - rows.y.values)) < 1e-6
        assert ((rows.x > -0.5) & (rows.x < NX - 0.5) & (rows.y > -0.5) & (rows.y < NY - 0.5)).all()
        # flux bookkeeping
        assert np.allclose(rows.mag, fr.zero_point - 2.5 * np.log10(rows.flux_e))
        assert np.allclose(rows.mag, 31.4 - 2.5 * np.log10(rows.flux_nJy))


def test_header_wcs_is_offset_and_rotated(survey):
    _, tf = _truth(survey)
    for _, fr in tf.iterrows():
        wt = WCS(fits.Header.fromstring(fr.wcs_true, sep="\n"))
        with fits.open(survey.outdir / fr.filename) as h, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NAXIS = 0 in a primary header describing the detector
            wh = WCS(h[0].header)
        c = [[(NX - 1) / 2, (NY - 1) / 2]]
        (a1, d1), = wt.all_pix2world(c, 0)
        (a2, d2), = wh.wcs_pix2world(c, 0)
        off = 3600 * math.hypot((a1 - a2) * math.cos(math.radians(d1)), d1 - d2)
        assert abs(off - fr.wcs_offset_arcsec) < 0.01
        # pointing error 2-10 arcsec plus the rotation about the boresight (< 0.2 deg x < 500 px)
        assert 1.0 < off < 10.0 + 0.2 * math.pi / 180 * 500 * 0.2
        rot = math.degrees(math.atan2(wh.wcs.cd[0, 1], -wh.wcs.cd[0, 0]))
        assert abs(rot - fr.wcs_rotation_deg) < 1e-6 and 0.05 <= abs(rot) <= 0.2


def test_wcs_error_amplitude_configurable(tmp_path):
    res = simulate(tmp_path / "w", visits=1, detectors=1, bands="g", size=128, n_bias=1, n_dark=1,
                   n_flat=1, wcs_offset=(30.0, 30.0), wcs_rotation=(0.5, 0.5))
    fr = pq.read_table(res.truth_frames).to_pandas().iloc[0]
    assert abs(abs(fr.wcs_rotation_deg) - 0.5) < 1e-9
    assert 25 < fr.wcs_offset_arcsec < 35


def test_overscan_carries_row_drift(survey):
    """Overscan rows follow a frame-specific drift: a per-row overscan removes it, a constant does not."""
    profiles = []
    for path in [b for b in survey.bias if "det001" in b.name][:2]:
        with fits.open(path) as h:
            hh, a = h[1].header, h[1].data.astype(float)
        bx1, bx2, _, _ = _iraf(hh["BIASSEC"])
        dx1, dx2, _, _ = _iraf(hh["DATASEC"])
        over = np.median(a[:, bx1 - 1:bx2], axis=1)
        data = np.median(a[:, dx1 - 1:dx2], axis=1)
        k = np.ones(15) / 15
        so, sd = np.convolve(over, k, "valid"), np.convolve(data, k, "valid")
        assert np.ptp(so) > 2.0                               # the level drifts along rows
        assert np.std((sd - sd.mean()) - (so - so.mean())) < 0.5  # data rows drift the same way
        assert 500 <= np.median(over) <= 2000
        profiles.append(so)
    assert np.std(profiles[0] - profiles[1]) > 0.3               # and differently in each frame


def test_flipped_amplifier_really_flipped(survey):
    """The brightest star in an amplifier reading out backwards peaks at the mirrored raw pixel."""
    ts, tf = _truth(survey)
    p = sv.SurveyParams(**_params(survey))
    camera = make_camera(p.detectors, tuple(p.shape), p.seed)
    found = 0
    for det in camera.detectors:
        for amp in det.amps:
            if not (amp.flip_x or amp.flip_y):
                continue
            for _, fr in tf[tf.detector == det.detector].iterrows():
                rows = ts[(ts.visit == fr.visit) & (ts.detector == det.detector) & ts.is_star
                          & (ts.x > amp.x0 + 4) & (ts.x < amp.x1 - 5)
                          & (ts.y > amp.y0 + 4) & (ts.y < amp.y1 - 5)]
                if rows.empty or rows.mag.min() > 20:
                    continue
                s = rows.loc[rows.mag.idxmin()]
                with fits.open(survey.outdir / fr.filename) as h:
                    a = h[amp.name].data.astype(float)
                ix, iy = int(round(s.x)), int(round(s.y))
                col = amp.prescan + ((amp.x1 - 1 - ix) if amp.flip_x else (ix - amp.x0))
                row = (amp.y1 - 1 - iy) if amp.flip_y else (iy - amp.y0)
                win = a[row - 3:row + 4, col - 3:col + 4]
                py, px = np.unravel_index(np.argmax(win), win.shape)
                assert abs(py - 3) <= 1 and abs(px - 3) <= 1
                found += 1
    assert found >= 2


def test_calibration_frames(survey):
    """Darks show hot pixels, flats show the response (bad columns) at the band's level."""
    p = sv.SurveyParams(**_params(survey))
    camera = make_camera(p.detectors, tuple(p.shape), p.seed)
    d = camera.detectors[0]
    bias = np.mean([_reduce(b)[0] for b in survey.bias if "det001" in b.name], axis=0)
    dark, _ = _reduce([x for x in survey.dark if "det001" in x.name][0])
    dark -= bias
    rate = sv.dark_map(p, d)
    hot = rate > 5.0
    assert hot.sum() >= 10
    assert np.median(dark[hot] / (rate[hot] * p.dark_exptime)) == pytest.approx(1.0, abs=0.1)
    flat, _ = _reduce([x for x in survey.flat if "det001" in x.name and "-g-" in x.name][0])
    flat -= bias
    resp = sv.response_map(p, camera, d, "g")
    ratio = flat / resp
    assert np.median(ratio) == pytest.approx(sv.FLAT_LEVEL["g"], rel=0.01)
    for c in sv.bad_columns(p, d):
        assert np.median(flat[:, c]) < 0.8 * np.median(flat)
    # pixel-to-pixel response ~1%
    assert 0.005 < np.std(resp[:, 20:60]) < 0.03


def test_cosmic_rays_are_sharp(survey):
    ts, tf = _truth(survey)
    cr = pq.read_table(survey.truth_cosmics).to_pandas()
    assert len(cr) > 0
    fr = tf.iloc[0]
    img, _ = _calibrated(survey, survey.outdir / fr.filename, fr.detector, fr.band)
    rows = cr[(cr.visit == fr.visit) & (cr.detector == fr.detector)]
    for _, c in rows.iterrows():
        ix, iy = int(round(c.x)), int(round(c.y))
        if 2 <= ix < NX - 2 and 2 <= iy < NY - 2:
            peak = img[iy - 1:iy + 2, ix - 1:ix + 2].max()
            assert peak - fr.sky > 150


# --- rendering -----------------------------------------------------------------------------

@settings(max_examples=15, deadline=None)
@given(st.floats(-0.49, 0.49), st.floats(-0.49, 0.49), st.floats(2.6, 6.0), st.floats(2.5, 4.5))
def test_star_pixels_are_integrated(fx, fy, fwhm, beta):
    """Noise-free Moffat stamp: sums to its flux; every pixel within 0.5% of the exact pixel
    integral (Gauss-Legendre, 16x16 nodes per pixel) of the profile renormalised to the stamp."""
    from minidr.simulate import kernels
    r = 16
    alpha = moffat_alpha(fwhm, beta)
    buf = np.empty((2 * r + 1) ** 2)
    one = lambda v: np.array([float(v)])
    kernels.moffat_stamps(one(fx), one(fy), one(1e5), one(alpha), one(beta), one(1), one(0), one(1),
                          np.array([r]), np.array([0]), 3, one(fwhm + 1.0), buf)
    stamp = buf.reshape(2 * r + 1, 2 * r + 1)
    assert stamp.sum() == pytest.approx(1e5, rel=1e-9)
    t, wt = np.polynomial.legendre.leggauss(16)
    t, wt = t / 2, wt / 2
    pix = np.arange(-r, r + 1)
    u = (pix[:, None] + t[None, :]).ravel() - fx          # x nodes
    v = (pix[:, None] + t[None, :]).ravel() - fy          # y nodes
    prof = (1 + (u[None, :] ** 2 + v[:, None] ** 2) / alpha ** 2) ** -beta
    w2 = np.tile(wt, 2 * r + 1)
    integ = (prof * w2[None, :] * w2[:, None]).reshape(2 * r + 1, 16, 2 * r + 1, 16).sum(axis=(1, 3))
    exact = 1e5 * integ / integ.sum()
    np.testing.assert_allclose(stamp, exact, rtol=0.005)


def test_galaxy_orientation_and_flux():
    """A galaxy elongated north-south is tall in pixels (north up), east-west is wide."""
    from minidr.simulate.sky import SkyCatalog
    cd = np.array([[-0.2 / 3600, 0.0], [0.0, 0.2 / 3600]])
    cat = SkyCatalog(*(np.zeros(2),) * 4, {}, *(np.zeros(2),) * 5,
                     half_light_radius=np.array([1.0, 1.0]), sersic_n=np.array([1.0, 4.0]),
                     ellipticity=np.array([0.5, 0.5]), position_angle=np.array([0.0, 90.0]))
    cov = sv.galaxy_unit_cov(cat, np.arange(2), cd)
    assert cov[0, 1, 1] > 3 * cov[0, 0, 0] and cov[1, 0, 0] > 3 * cov[1, 1, 1]
    img = sv.render_objects((121, 121), np.array([60.3, 60.3]), np.array([59.8, 59.8]), [1e4, 1e4],
                            np.array([False, False]), np.array([4.0, 4.0]), 3.0, (0.0, 0.0), cov[:1].repeat(2, 0),
                            np.array([5.0, 5.0]), np.array([1.0, 1.0]))
    assert img.sum() == pytest.approx(2e4, rel=1e-6)
    yy, xx = np.mgrid[0:121, 0:121]
    m = img.sum()
    cx, cy = (img * xx).sum() / m, (img * yy).sum() / m
    assert abs(cx - 60.3) < 0.02 and abs(cy - 59.8) < 0.02
    assert (img * (yy - cy) ** 2).sum() > 2 * (img * (xx - cx) ** 2).sum()


def test_catalogue_density():
    """A 1024x1024 detector sees >= 25 reference stars (r < 22) and ~100+ stars in total."""
    rng = np.random.default_rng(0)
    half = 0.1
    cat = make_catalog(rng, 150.0, 2.0, half, half, "gri")
    det_area = (1024 * 0.2 / 3600) ** 2
    per_det = det_area / (2 * half) ** 2
    stars = cat.is_star
    assert stars.sum() * per_det > 100
    assert (stars & (cat.mags["r"] < 22)).sum() * per_det >= 25
    assert (cat.mags["g"][stars] > cat.mags["i"][stars]).mean() > 0.9  # stars are redder in g-i
    var = cat.is_variable
    assert 0.03 < var[stars].mean() < 0.07 and not var[~stars].any()
    assert (cat.var_amplitude[var] >= 0.05).all() and (cat.var_amplitude[var] <= 0.5).all()
    re_ = cat.half_light_radius[~stars]
    assert re_.min() >= 0.3 and re_.max() <= 2.0


def test_sky_brighter_in_redder_bands_and_variables_vary(survey):
    ts, tf = _truth(survey)
    assert tf[tf.band == "r"].sky.min() > tf[tf.band == "g"].sky.max()
    assert tf.psf_fwhm.between(0.55, 1.3).all()
    assert tf.mjd.max() - tf.mjd.min() > 7
    to = pq.read_table(survey.truth_objects).to_pandas()
    var = set(to.truthId[to.is_variable])
    g = ts[ts.truthId.isin(var) & (ts.band == "g")].groupby("truthId").mag
    spread = (g.max() - g.min())[g.count() > 1]
    const = ts[~ts.truthId.isin(var) & (ts.band == "g")].groupby("truthId").mag
    assert ((const.max() - const.min()) < 1e-9).all()
    if len(spread):
        assert spread.max() > 0.01


def test_gaussmix_kernel_matches_naive_numpy():
    """The row-recurrence Gaussian kernel equals a direct numpy evaluation."""
    from minidr.simulate import kernels
    rng = np.random.default_rng(5)
    for _ in range(5):
        r = int(rng.integers(5, 30))
        fx, fy = rng.uniform(-0.5, 0.5, 2)
        cg = np.array([[rng.uniform(0.5, 20), 0.0], [0.0, rng.uniform(0.5, 20)]])
        cg[0, 1] = cg[1, 0] = rng.uniform(-0.8, 0.8) * math.sqrt(cg[0, 0] * cg[1, 1])
        gw = np.array([[0.3, 0.7]])
        gv = np.array([[0.2, 1.3]])
        pv, pa = np.array([0.5, 2.0]), np.array([0.6, 0.4])
        s11, s12, s22 = 1.02, 0.03, 1 / 1.02 + 0.03 ** 2 / 1.02
        alpha = 1.7
        buf = np.empty((2 * r + 1) ** 2)
        kernels.gaussmix_stamps(np.array([fx]), np.array([fy]), np.array([1000.0]),
                                gv * cg[0, 0], gv * cg[0, 1], gv * cg[1, 1], gw, np.array([2]),
                                pv, pa, s11, s12, s22, np.array([alpha]), np.array([r]),
                                np.array([0]), buf)
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
        dx, dy = xx - fx, yy - fy
        ref = np.zeros_like(dx, dtype=float)
        for g in range(2):
            for j in range(2):
                c = gv[0, g] * cg + alpha ** 2 * pv[j] * np.array([[s11, s12], [s12, s22]]) + np.eye(2) / 12
                ci = np.linalg.inv(c)
                q = ci[0, 0] * dx ** 2 + 2 * ci[0, 1] * dx * dy + ci[1, 1] * dy ** 2
                ref += gw[0, g] * pa[j] * np.exp(-0.5 * q) / (2 * np.pi * np.sqrt(np.linalg.det(c)))
        ref *= 1000.0 / ref.sum()
        np.testing.assert_allclose(buf.reshape(ref.shape), ref, rtol=1e-9, atol=1e-9 * ref.max())


def test_true_wcs_has_radial_distortion(survey):
    """The true WCS is TAN-SIP with a radial distortion about the optical axis (CRPIX)."""
    _, tf = _truth(survey)
    fr = tf.iloc[0]
    h = fits.Header.fromstring(fr.wcs_true, sep="\n")
    assert h["CTYPE1"] == "RA---TAN-SIP" and h["A_3_0"] == pytest.approx(2e-11)
    w = WCS(h)
    # a point 1000 px from the axis moves outwards by k r^3 = 0.02 px
    px = np.array([[h["CRPIX1"] - 1 + 1000.0, h["CRPIX2"] - 1]])
    lin = w.wcs_pix2world(px, 0)
    sip = w.all_pix2world(px, 0)
    x_lin, _ = w.wcs_world2pix(sip, 0)[0]
    assert x_lin - px[0, 0] == pytest.approx(2e-11 * 1000 ** 3, rel=1e-3)
    assert not np.allclose(lin, sip, rtol=0, atol=1e-9)


@pytest.mark.parametrize("lam", [0.0, 0.3, 4.0, 29.0, 31.0, 400.0, 20000.0])
def test_poisson_deviates(lam):
    """Mean, variance and skewness of the fast Poisson generator match the Poisson law."""
    from scipy import stats
    rng = np.random.default_rng(11)
    k = sv.poisson(rng, np.full((400, 500), lam))
    assert (k == np.round(k)).all() and (k >= 0).all()
    n = k.size
    if lam == 0:
        assert (k == 0).all()
        return
    assert abs(k.mean() - lam) < 5 * math.sqrt(lam / n)
    assert k.var() == pytest.approx(lam, rel=5 * math.sqrt(2 / n) + 1e-3)
    assert stats.skew(k.ravel()) == pytest.approx(1 / math.sqrt(lam), abs=0.03)
    if lam < 100:   # whole distribution
        ks = np.arange(0, int(lam + 8 * math.sqrt(lam) + 5))
        obs = np.array([(k == v).mean() for v in ks])
        assert np.abs(obs - stats.poisson.pmf(ks, lam)).max() < 0.004


def test_committed_sample_matches_its_readme():
    """data_samples/ was made by the command its README gives, and stays under 12 MB."""
    import json
    root = Path(__file__).resolve().parents[2] / "data_samples"
    params = json.loads((root / "simulate.json").read_text())
    readme = (root / "README.md").read_text()
    assert "--visits 3 --detectors 2 --bands gr --size 1024x368" in readme
    assert "--seed 42 --compress --biases 3 --darks 2 --flats 2" in readme
    want = dict(visits=3, detectors=2, bands="gr", shape=[368, 1024], seed=42, compress=True,
                n_bias=3, n_dark=2, n_flat=2)
    assert {k: params[k] for k in want} == want
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total < 12_000_000
    assert len(list((root / "raw" / "science").glob("*.fits.fz"))) == 12


def test_field_across_ra_zero(tmp_path):
    """A field centred at RA 0: catalogue RAs wrap to [0, 360), the true WCS still maps them."""
    res = simulate(tmp_path / "z", visits=1, detectors=2, bands="r", size=128, ra=0.0, dec=-30.0,
                   n_bias=1, n_dark=1, n_flat=1, star_density=400_000.0)
    to = pq.read_table(res.truth_objects).to_pandas().set_index("truthId")
    assert to.ra.between(0, 360).all() and (to.ra < 1).any() and (to.ra > 359).any()
    ts, tf = _truth(res)
    for _, fr in tf.iterrows():
        w = WCS(fits.Header.fromstring(fr.wcs_true, sep="\n"))
        rows = ts[(ts.visit == fr.visit) & (ts.detector == fr.detector)]
        assert len(rows) > 0
        x, y = w.all_world2pix(to.loc[rows.truthId].ra.values, to.loc[rows.truthId].dec.values, 0,
                               tolerance=1e-10, maxiter=100)
        assert np.max(np.hypot(x - rows.x.values, y - rows.y.values)) < 1e-6
        with fits.open(res.outdir / fr.filename) as h:
            ra = parse_ra(h[0].header["RA"])
        assert min(ra, 360 - ra) < 0.05


@pytest.mark.parametrize("fwhm,beta", [(3.0, 2.5), (4.5, 3.2), (6.0, 4.0)])
def test_truth_snr_uses_the_noise_area_of_the_rendered_moffat(fwhm, beta):
    """qa.truth's expected S/N is a PSF fit's: its area is 1 / sum(P^2) of the star the
    simulator draws (within 5%: pixel integration adds ~1.5 pixel^2), 1.4-1.9x that of a
    Gaussian of the same FWHM."""
    from minidr.qa.truth import expected_snr, psf_noise_area

    img = sv.render_objects((81, 81), np.array([40.3]), np.array([39.8]), np.array([1e7]), np.array([True]),
                            np.array([fwhm]), beta, (0.0, 0.0), np.zeros((1, 2, 2)), np.zeros(1), np.ones(1))
    p = img / img.sum()
    area = float(psf_noise_area(fwhm, beta))
    assert area == pytest.approx(1.0 / float((p**2).sum()), rel=0.05)
    assert 1.35 < area / float(psf_noise_area(fwhm)) < 2.0
    sky = 400.0
    assert float(expected_snr(1000.0, fwhm, sky, beta=beta)) == pytest.approx(
        1000.0 / math.sqrt(1000.0 + area * (sky + 36.0)))
