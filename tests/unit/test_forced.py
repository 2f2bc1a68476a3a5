"""Forced photometry on a synthetic frame with planted stars (WCS across RA 0)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.wcs import WCS

from minidr.associate.forced import FORCED_KEYS, measure_frame
from minidr.errors import InputError
from minidr.image.psf import PsfModel
from minidr.products import SourceFlag

NY, NX = 160, 240
SCALE = 0.2 / 3600  # deg per pixel
SKY_VAR = 100.0     # e^2


def _wcs():
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [0.002, -20.0]       # the frame straddles RA 0
    w.wcs.crpix = [NX / 2 + 0.5, NY / 2 + 0.5]  # 1-based FITS convention
    w.wcs.cd = [[-SCALE * np.cos(0.1), SCALE * np.sin(0.1)], [SCALE * np.sin(0.1), SCALE * np.cos(0.1)]]
    return w


@pytest.fixture(scope="module")
def frame():
    return make_frame(5)


def make_frame(seed):
    """A 160x240 frame (TAN WCS across RA 0) with 66 objects planted at known fluxes."""
    rng = np.random.default_rng(seed)
    psf = PsfModel.gaussian_like(3.0, (NY, NX))
    wcs = _wcs()
    # objects: 40 inside (10 of them undetectable: zero flux), 6 near the edge, 20 off the frame
    gx, gy = np.meshgrid(np.arange(8) * 28.0 + 20, np.arange(5) * 28.0 + 22)  # isolated: 28 px apart
    xin = gx.ravel() + rng.uniform(-2, 2, 40)
    yin = gy.ravel() + rng.uniform(-2, 2, 40)
    xe = np.array([1.0, NX - 2.0, 50.0, 120.0, 3.0, NX - 1.4])
    ye = np.array([50.0, 80.0, 2.0, NY - 3.0, 3.0, NY - 1.4])
    xo = rng.uniform(-300, NX + 300, 40)
    yo = rng.uniform(-300, NY + 300, 40)
    off = (xo < -1) | (xo > NX) | (yo < -1) | (yo > NY)
    xo, yo = xo[off][:20], yo[off][:20]
    x = np.r_[xin, xe, xo]
    y = np.r_[yin, ye, yo]
    flux = np.r_[rng.uniform(2000, 50000, 30), np.zeros(10), np.full(6, 20000.0), np.full(xo.size, 1e4)]
    image = np.zeros((NY, NX))
    r = 12
    for xi, yi, fi in zip(x, y, flux):
        if fi <= 0 or not (-r <= xi < NX + r and -r <= yi < NY + r):
            continue
        st = psf.stamp(xi, yi, r) * fi
        cx, cy = int(np.floor(xi + 0.5)), int(np.floor(yi + 0.5))
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                if 0 <= cy + dy < NY and 0 <= cx + dx < NX:
                    image[cy + dy, cx + dx] += st[dy + r, dx + r]
    variance = SKY_VAR + image
    image = image + rng.normal(0, 1, image.shape) * np.sqrt(variance)
    ra, dec = wcs.all_pix2world(x, y, 0)
    ids = np.arange(100, 100 + x.size, dtype=np.int64)
    mask = np.zeros((NY, NX), np.uint16)
    out = measure_frame(image.astype(np.float32), variance.astype(np.float32), mask, wcs, psf, ids, ra, dec)
    return {"out": out, "ids": ids, "x": x, "y": y, "flux": flux, "ra": ra, "dec": dec, "psf": psf, "wcs": wcs,
                "image": image.astype(np.float32), "variance": variance.astype(np.float32)}


def test_objects_on_the_frame_are_measured_and_others_skipped(frame):
    out, ids = frame["out"], frame["ids"]
    assert tuple(out) == FORCED_KEYS
    assert np.array_equal(out["objectId"], ids[:46])       # in input order, off-frame ones skipped
    assert out["objectId"].dtype == np.int64 and out["flags"].dtype == np.int32
    assert np.all(frame["ra"][:46] > 359.9) or np.any(frame["ra"][:46] < 0.1)
    assert np.any(frame["ra"][:46] > 359.9) and np.any(frame["ra"][:46] < 0.1)  # across RA 0
    assert np.max(np.abs(out["x"] - frame["x"][:46])) < 1e-6
    assert np.max(np.abs(out["y"] - frame["y"][:46])) < 1e-6


def test_fluxes_recovered_within_errors_including_non_detections(frame):
    out = frame["out"]
    inner = slice(0, 40)
    pull = (out["psfFlux"][inner] - frame["flux"][inner]) / out["psfFluxErr"][inner]
    assert np.all(np.isfinite(pull))
    assert np.max(np.abs(pull)) < 5.0
    assert abs(np.median(pull)) < 0.7
    # undetectable objects: flux consistent with zero, error ~ sky-limited PSF error
    zero = out["psfFlux"][30:40] / out["psfFluxErr"][30:40]
    assert np.max(np.abs(zero)) < 4.0
    assert np.all(out["flags"][:40] == 0)


def test_edge_objects_are_flagged(frame):
    out, psf = frame["out"], frame["psf"]
    edge = out["flags"][40:46]
    assert np.all(edge & SourceFlag.EDGE)
    r = psf.fit_radius
    x, y = out["x"], out["y"]
    inside = (x >= r) & (y >= r) & (x <= NX - 1 - r) & (y <= NY - 1 - r)
    assert np.all((out["flags"][~inside] & SourceFlag.EDGE) != 0)


def test_no_objects_and_bad_inputs(frame):
    f = frame
    out = measure_frame(f["image"], f["variance"], None, f["wcs"], f["psf"], [], [], [])
    assert all(out[k].size == 0 for k in FORCED_KEYS)
    out = measure_frame(f["image"], f["variance"], None, f["wcs"], f["psf"], [1], [180.0], [40.0])
    assert out["objectId"].size == 0
    with pytest.raises(InputError, match="same shape"):
        measure_frame(f["image"], f["variance"][:10], None, f["wcs"], f["psf"], [1], [0.0], [0.0])
    with pytest.raises(InputError, match="length"):
        measure_frame(f["image"], f["variance"], None, f["wcs"], f["psf"], [1, 2], [0.0], [0.0])


# --- reading calexps for forced photometry (minidr.associate.calexp) -----------------------


def _calexp_exposure(ny=37, nx=53, seed=3):
    from minidr.products import AmpInfo, Exposure, RawInfo, Section

    rng = np.random.default_rng(seed)
    amp = AmpInfo("A0", 1, Section(0, ny, 0, nx), Section(0, ny, 0, 4), Section(0, ny, 0, nx), 1.5, 5.0, 60000.0)
    info = RawInfo(path="/raw/x.fits", imagetyp="science", exptime=30.0, mjd=60000.0, band="r", visit=7,
                   detector=2, instrument="T", ra=0.0, dec=-20.0, shape=(ny, nx), amps=(amp,), wcs_header=None)
    image = rng.normal(0, 30, (ny, nx)).astype(np.float32)
    image[3, 4] = np.nan
    image[5, 6] = -np.inf
    image[7, 8] = 3.4e38
    variance = np.abs(rng.normal(900, 40, (ny, nx))).astype(np.float32)
    mask = rng.integers(0, 512, (ny, nx)).astype(np.uint16)
    wcs = _wcs()
    return Exposure(image, variance, mask, info, wcs=wcs, metadata={"zeroPoint": 31.0}), wcs


def _same_as_store(path, exp_wcs):
    from minidr.associate.calexp import read_forced_inputs
    from minidr.repo.store import read_calexp

    fast = read_forced_inputs(path)
    ref = read_calexp(path)
    assert fast.image.dtype == np.float32 and fast.variance.dtype == np.float32 and fast.mask.dtype == np.uint16
    assert np.array_equal(fast.image, ref.image, equal_nan=True)
    assert np.array_equal(fast.variance, ref.variance, equal_nan=True)
    assert np.array_equal(fast.mask, ref.mask)
    assert fast.psf == ref.metadata["psf"]
    x, y = np.array([0.0, 20.5, 52.0]), np.array([0.0, 11.0, 36.0])
    assert np.array_equal(np.array(fast.wcs.all_pix2world(x, y, 0)), np.array(ref.wcs.all_pix2world(x, y, 0)))
    assert np.allclose(np.array(fast.wcs.all_pix2world(x, y, 0)), np.array(exp_wcs.all_pix2world(x, y, 0)),
                       rtol=0, atol=1e-10)
    return fast


def test_calexp_planes_read_exactly_as_the_store_reads_them(tmp_path):
    from minidr.repo.store import write_calexp

    exp, wcs = _calexp_exposure()
    psf = PsfModel.gaussian_like(3.0, exp.image.shape)
    write_calexp(tmp_path / "calexp.fits", exp, {"psf": psf.to_dict()})
    fast = _same_as_store(tmp_path / "calexp.fits", wcs)
    assert np.isnan(fast.image[3, 4]) and fast.image[5, 6] == -np.inf and fast.image[7, 8] == np.float32(3.4e38)
    assert PsfModel.from_dict(fast.psf).fit_radius == psf.fit_radius


@pytest.mark.parametrize("layout", ["rows_of_5", "rice_quantized", "square_tiles"])
def test_other_tile_layouts_are_read_too(tmp_path, layout):
    """Multi-row tiles take the fast path; any other layout falls back to astropy."""
    import json

    from astropy.io import fits

    exp, wcs = _calexp_exposure()
    ny, nx = exp.image.shape
    kw = {"rows_of_5": {"compression_type": "GZIP_2", "quantize_level": 0.0, "tile_shape": (5, nx)},
          "rice_quantized": {"compression_type": "RICE_1", "quantize_level": 0.0, "tile_shape": (1, nx)},
          "square_tiles": {"compression_type": "GZIP_2", "quantize_level": 0.0, "tile_shape": (16, 16)}}[layout]
    psf = PsfModel.gaussian_like(3.0, (ny, nx))
    hdr = fits.Header()
    hdr["MDRTYPE"] = "calexp"
    hdr["EXTRA"] = json.dumps({"psf": psf.to_dict()})
    ihdr = wcs.to_header()
    hdus = [fits.PrimaryHDU(header=hdr), fits.CompImageHDU(exp.image, header=ihdr, name="IMAGE", **kw),
            fits.CompImageHDU(exp.mask, name="MASK", compression_type="RICE_1"),
            fits.CompImageHDU(exp.variance, name="VARIANCE", **kw)]
    path = tmp_path / f"{layout}.fits"
    fits.HDUList(hdus).writeto(path)
    from minidr.associate.calexp import read_forced_inputs

    fast = read_forced_inputs(path)
    with fits.open(path) as h:
        assert np.array_equal(fast.image, h["IMAGE"].data, equal_nan=True)
        assert np.array_equal(fast.variance, h["VARIANCE"].data, equal_nan=True)
        assert np.array_equal(fast.mask, h["MASK"].data)


def test_bad_calexps_name_the_file(tmp_path):
    from minidr.associate.calexp import read_forced_inputs
    from minidr.repo.store import write_calexp

    with pytest.raises(InputError, match="nope.fits"):
        read_forced_inputs(tmp_path / "nope.fits")
    exp, _ = _calexp_exposure()
    good = tmp_path / "good.fits"
    write_calexp(good, exp, {"psf": PsfModel.gaussian_like(3.0, exp.image.shape).to_dict()})
    trunc = tmp_path / "trunc.fits"
    trunc.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError, match="trunc.fits"):
        read_forced_inputs(trunc)
    nopsf = tmp_path / "nopsf.fits"
    write_calexp(nopsf, exp)
    with pytest.raises(InputError, match="PSF"):
        read_forced_inputs(nopsf)
