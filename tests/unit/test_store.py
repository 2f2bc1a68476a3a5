"""Round trips of master calibrations and calibrated exposures through FITS."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.wcs import WCS

from minidr.errors import InputError
from minidr.products import AmpInfo, Exposure, MaskBit, MasterCalib, RawInfo, Section
from minidr.repo.store import read_calexp, read_master, write_calexp, write_master


def _info():
    amp = AmpInfo("A0", 1, Section(0, 40, 4, 64), Section(0, 40, 64, 80),
                  Section(0, 40, 0, 60, flip_x=True), 1.5, 5.0, 60000.0)
    return RawInfo(path="/data/raw/sci_0001.fits", imagetyp="science", exptime=30.0, mjd=60123.25,
                   band="g", visit=12, detector=3, instrument="TESTCAM", ra=150.1, dec=2.2,
                   shape=(40, 60), amps=(amp,), wcs_header=None)


def _sip_wcs():
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    w.wcs.crval = [150.1, 2.2]
    w.wcs.crpix = [30.5, 20.5]
    w.wcs.cd = [[-5.5e-5, 1e-7], [2e-7, 5.5e-5]]
    from astropy.wcs import Sip
    a = np.zeros((3, 3)); b = np.zeros((3, 3))
    a[2, 0] = 1e-6; b[0, 2] = -2e-6; a[1, 1] = 3e-7
    w.sip = Sip(a, b, None, None, w.wcs.crpix)
    return w


def test_master_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    img = rng.normal(1.0, 0.01, (40, 60)).astype(np.float32)
    mask = np.zeros((40, 60), np.uint16)
    mask[:, 7] = MaskBit.BAD
    m = MasterCalib("flat", 3, "g", img, mask, ("a.fits", "b.fits"), noise=0.0042)
    p = tmp_path / "calibs" / "flat" / "g" / "det003.fits"
    write_master(p, m)
    r = read_master(p)
    assert (r.kind, r.detector, r.band, r.inputs, r.noise) == ("flat", 3, "g", ("a.fits", "b.fits"), 0.0042)
    assert np.array_equal(r.image, img) and r.image.dtype == np.float32
    assert np.array_equal(r.mask, mask) and r.mask.dtype == np.uint16
    b = MasterCalib("bias", 3, None, img, mask, ())
    write_master(p, b)
    assert read_master(p).band is None
    assert not list(p.parent.glob(".*tmp*"))


def test_calexp_round_trip_with_sip_and_metadata(tmp_path):
    rng = np.random.default_rng(2)
    img = rng.normal(500, 25, (40, 60)).astype(np.float32)
    img[10, 10] = 1e5
    var = np.abs(rng.normal(600, 5, (40, 60))).astype(np.float32)
    mask = rng.integers(0, 128, (40, 60)).astype(np.uint16)
    wcs = _sip_wcs()
    meta = {"read_noise": 5.25, "n_cr": np.int64(3), "amps": [1.5, 1.7], "nested": {"x": None}}
    extra = {"psf": {"fwhm": 3.1, "coeffs": np.arange(6.0).reshape(2, 3)}, "zero_point": 31.123456789,
             "note": "x" * 5000}
    e = Exposure(img, var, mask, _info(), wcs=wcs, metadata=meta)
    p = tmp_path / "calexp.fits"
    write_calexp(p, e, header_extra=extra)
    r = read_calexp(p)
    assert np.array_equal(r.image, img) and np.array_equal(r.variance, var) and np.array_equal(r.mask, mask)
    assert r.info == e.info
    assert r.metadata["read_noise"] == 5.25 and r.metadata["n_cr"] == 3
    assert r.metadata["nested"] == {"x": None}
    assert r.metadata["psf"]["coeffs"] == [[0, 1, 2], [3, 4, 5]]
    assert r.metadata["zero_point"] == 31.123456789 and r.metadata["note"] == "x" * 5000
    assert r.wcs.sip is not None
    yy, xx = np.mgrid[0:40:7, 0:60:9]
    ra0, dec0 = wcs.all_pix2world(xx.ravel(), yy.ravel(), 0)
    ra1, dec1 = r.wcs.all_pix2world(xx.ravel(), yy.ravel(), 0)
    assert np.max(np.hypot((ra1 - ra0) * np.cos(np.radians(2.2)), dec1 - dec0)) * 3.6e6 < 0.01  # mas


def test_calexp_without_wcs(tmp_path):
    z = np.zeros((5, 6), np.float32)
    e = Exposure(z, z.copy(), np.zeros((5, 6), np.uint16), _info())
    write_calexp(tmp_path / "c.fits", e)
    r = read_calexp(tmp_path / "c.fits")
    assert r.wcs is None and r.metadata == {}


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    with pytest.raises(InputError, match="nope.fits"):
        read_master(tmp_path / "nope.fits")
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"SIMPLE  = garbage" * 10)
    with pytest.raises(InputError, match="bad.fits"):
        read_calexp(bad)
    # a truncated calexp
    z = np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32)
    good = tmp_path / "good.fits"
    write_calexp(good, Exposure(z, z.copy(), np.zeros((64, 64), np.uint16), _info()))
    trunc = tmp_path / "trunc.fits"
    trunc.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError, match="trunc.fits"):
        read_calexp(trunc)
    # a master is not a calexp
    m = tmp_path / "m.fits"
    write_master(m, MasterCalib("bias", 1, None, z, np.zeros((64, 64), np.uint16), ()))
    with pytest.raises(InputError, match="MDRTYPE"):
        read_calexp(m)


def test_master_image_plain_and_old_compressed_masters_still_read(tmp_path):
    """Masters are written with an uncompressed IMAGE; a master written the old way
    (GZIP_2 tile-compressed IMAGE) reads back the same."""
    from astropy.io import fits

    from minidr.repo import store

    rng = np.random.default_rng(3)
    img = rng.normal(1.0, 0.01, (70, 50)).astype(np.float32)
    mask = (rng.random((70, 50)) < 0.05).astype(np.uint16) * np.uint16(MaskBit.BAD)
    m = MasterCalib("flat", 2, "r", img, mask, ("x.fits",))
    p = tmp_path / "new.fits"
    write_master(p, m)
    with fits.open(p) as hl:
        assert type(hl["IMAGE"]) is fits.ImageHDU and isinstance(hl["MASK"], fits.CompImageHDU)
    old = tmp_path / "old.fits"
    hdr = fits.Header({"MDRTYPE": "master", "KIND": "flat", "DETECTOR": 2, "BAND": "r", "NINPUTS": 1,
                       "INPUTS": '["x.fits"]'})
    store._write(old, [fits.PrimaryHDU(header=hdr), store._float_hdu(img, "IMAGE", None, (64, 50)),
                       store._mask_hdu(mask, "MASK", (64, 50))])
    for path in (p, old):
        r = read_master(path)
        assert np.array_equal(r.image, img) and np.array_equal(r.mask, mask)
        assert (r.kind, r.detector, r.band, r.inputs) == ("flat", 2, "r", ("x.fits",))
