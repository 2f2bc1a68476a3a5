"""minidr.raw.reader on real FITS files written here with astropy (and files shipped by PyPI packages).

``make_raw`` is the raw-frame factory shared by test_headers/test_registry/test_ingest.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from minidr.errors import InputError
from minidr.raw import read_header, read_raw

WCS = {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 150.0, "CRVAL2": 2.0, "CRPIX1": 16.5,
       "CRPIX2": 10.5, "CD1_1": -5.5e-5, "CD1_2": 0.0, "CD2_1": 0.0, "CD2_2": 5.5e-5}


def amp_pixels(i: int, ny: int, nx: int, seed: int = 0) -> np.ndarray:
    """Deterministic, distinctive pixel values of amplifier i (ADU, fit in uint16)."""
    yy, xx = np.mgrid[0:ny, 0:nx]
    return (1000 + 100 * i + 7 * yy + xx + seed) % 60000


def make_raw(path, *, imagetyp="object", visit=1, detector=0, band="g", layout="mef", n_amps=2,
             compress=None, flip=True, ny=20, nx_data=16, overscan=4, bitpix=16, primary_extra=None,
             amp_extra=None, drop=(), seed=0, ra="10:00:00", dec="+02:00:00"):
    """Write a small raw frame as real cameras do; return its path.

    layout 'mef': empty primary + one image extension per amplifier (amps side by side in x,
    odd amps read out backwards when ``flip``); 'primary': one amplifier in the primary HDU.
    compress: None, 'gz' (whole file gzipped) or 'fz' (RICE tile-compressed extensions).
    ``amp_extra`` sets keywords on every amplifier header (or a list: one dict per amp);
    ``drop`` removes keywords everywhere.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if layout == "primary":
        n_amps = 1
    prim = {"IMAGETYP": imagetyp, "EXPTIME": 30.0 if imagetyp != "bias" else 0.0, "MJD-OBS": 60000.1 + visit * 0.01,
            "FILTER": band, "EXPID": visit, "DETECTOR": detector, "INSTRUME": "TESTCAM", "RA": ra, "DEC": dec}
    wcs = dict(WCS)
    wcs["CRPIX1"] = (n_amps * nx_data + 1) / 2
    prim.update(wcs)
    prim.update(primary_extra or {})
    amps = []
    for i in range(n_amps):
        data = amp_pixels(i, ny, nx_data + overscan, seed)
        data = data.astype({16: np.uint16, 32: np.int32, -32: np.float32, 8: np.uint8}[bitpix])
        x1, x2 = i * nx_data + 1, (i + 1) * nx_data
        if flip and i % 2 == 1:
            x1, x2 = x2, x1
        hdr = {"EXTNAME": f"AMP{i}", "DATASEC": f"[1:{nx_data},1:{ny}]",
               "BIASSEC": f"[{nx_data + 1}:{nx_data + overscan},1:{ny}]", "DETSEC": f"[{x1}:{x2},1:{ny}]",
               "GAIN": 1.5 + 0.1 * i, "RDNOISE": 5.0, "SATURATE": 60000.0}
        extra = amp_extra[i] if isinstance(amp_extra, list) else (amp_extra or {})
        hdr.update(extra)
        amps.append((data, hdr))

    def header(d):
        h = fits.Header()
        for k, v in d.items():
            if k not in drop and v is not None:
                h[k] = v
        return h

    if layout == "primary":
        data, hdr = amps[0]
        hdr = {k: v for k, v in hdr.items() if k != "EXTNAME"}
        if compress == "fz":
            hl = fits.HDUList([fits.PrimaryHDU(header=header(prim)),
                               fits.CompImageHDU(data, header=header(hdr), compression_type="RICE_1")])
        else:
            hl = fits.HDUList([fits.PrimaryHDU(data, header=header({**prim, **hdr}))])
    else:
        ext = fits.CompImageHDU if compress == "fz" else fits.ImageHDU
        kw = {"compression_type": "RICE_1"} if compress == "fz" else {}
        hl = fits.HDUList([fits.PrimaryHDU(header=header(prim))] +
                          [ext(data, header=header(hdr), **kw) for data, hdr in amps])
    if compress == "gz":
        tmp = path.with_name(path.name + ".tmp")
        hl.writeto(tmp, overwrite=True)
        with open(tmp, "rb") as src, gzip.open(path, "wb") as dst:
            shutil.copyfileobj(src, dst)
        tmp.unlink()
    else:
        hl.writeto(path, overwrite=True)
    return path


# --- good files -------------------------------------------------------------------------------


@pytest.mark.parametrize("compress,suffix", [(None, ".fits"), ("gz", ".fits.gz"), ("fz", ".fits.fz")])
def test_multi_extension_round_trip(tmp_path, compress, suffix):
    p = make_raw(tmp_path / f"sci{suffix}", compress=compress, n_amps=2)
    info = read_header(p)
    assert info.imagetyp == "science" and info.band == "g" and info.visit == 1 and info.detector == 0
    assert info.shape == (20, 32)
    assert [a.hdu for a in info.amps] == [1, 2]
    assert [a.name for a in info.amps] == ["AMP0", "AMP1"]
    assert info.amps[1].detsec.flip_x and not info.amps[0].detsec.flip_x
    assert info.amps[1].detsec.slices == (slice(0, 20), slice(16, 32))
    assert info.amps[0].biassec.slices == (slice(0, 20), slice(16, 20))
    assert info.ra == pytest.approx(150.0) and info.dec == pytest.approx(2.0)
    assert info.wcs_header["CRVAL1"] == 150.0 and info.wcs_header["CD2_2"] == 5.5e-5
    raw = read_raw(p)
    assert len(raw.amp_pixels) == 2
    for i, arr in enumerate(raw.amp_pixels):
        assert arr.dtype == np.uint16 and arr.shape == (20, 20)  # BITPIX 16, BZERO 32768
        np.testing.assert_array_equal(arr, amp_pixels(i, 20, 20))  # as stored: not flipped


@pytest.mark.parametrize("compress", [None, "gz", "fz"])
def test_one_amp_in_primary(tmp_path, compress):
    p = make_raw(tmp_path / "one.fits", layout="primary", compress=compress, imagetyp="bias", band=None)
    info = read_header(p)
    assert info.imagetyp == "bias" and info.band is None and len(info.amps) == 1
    assert info.amps[0].hdu == (1 if compress == "fz" else 0)
    assert info.shape == (20, 16) and info.wcs_header is None
    raw = read_raw(p)
    np.testing.assert_array_equal(raw.amp_pixels[0], amp_pixels(0, 20, 20))


def test_bitpix32_and_unsigned16(tmp_path):
    p32 = make_raw(tmp_path / "b32.fits", bitpix=32)
    assert read_header(p32).bitpix == 32
    np.testing.assert_array_equal(read_raw(p32).amp_pixels[1], amp_pixels(1, 20, 20))
    p16 = make_raw(tmp_path / "b16.fits", seed=58000)  # values up to ~60000: needs BZERO 32768
    with fits.open(p16) as hl:
        assert hl[1].header["BZERO"] == 32768
    arr = read_raw(p16).amp_pixels[0]
    assert arr.max() > 32767 and arr.dtype == np.uint16
    np.testing.assert_array_equal(arr, amp_pixels(0, 20, 20, 58000))
    assert read_raw(p32).amp_pixels[1].dtype == np.int32


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.int32])
def test_plain_read_matches_fitsio(tmp_path, dtype):
    """The direct read of uncompressed HDUs gives fitsio's values (signed, unsigned via
    BZERO, negative, extreme) in native byte order."""
    import fitsio

    info = np.iinfo(dtype)
    rng = np.random.default_rng(4)
    vals = [rng.integers(max(info.min, -70000), min(info.max, 70000), (20, 20), endpoint=True).astype(dtype)
            for _ in range(2)]
    vals[0][0, :2] = [info.min, info.max]
    p = make_raw(tmp_path / "d.fits", bitpix=16)
    with fits.open(p) as hl:
        hdus = [hl[0].copy()] + [fits.ImageHDU(v, header=h.header.copy()) for v, h in zip(vals, hl[1:])]
        for h in hdus[1:]:
            for k in ("BZERO", "BSCALE"):
                h.header.pop(k, None)
    q = tmp_path / "e.fits"
    fits.HDUList([fits.PrimaryHDU(header=hdus[0].header)] + [fits.ImageHDU(v, header=h.header) for v, h in
                                                             zip(vals, hdus[1:])]).writeto(q)
    raw = read_raw(q)
    with fitsio.FITS(str(q)) as fh:
        for amp, arr, v in zip(raw.info.amps, raw.amp_pixels, vals):
            ref = fh[amp.hdu].read()
            assert arr.dtype == np.dtype(dtype) and arr.dtype.isnative and arr.flags.c_contiguous
            np.testing.assert_array_equal(arr, ref)
            np.testing.assert_array_equal(arr, v)


def test_detsec_offset_in_mosaic_is_shifted_to_origin(tmp_path):
    amp_extra = [{"DETSEC": "[2049:2064,4097:4116]"}, {"DETSEC": "[2080:2065,4097:4116]"}]
    info = read_header(make_raw(tmp_path / "m.fits", amp_extra=amp_extra))
    assert info.shape == (20, 32)
    assert info.amps[0].detsec.slices == (slice(0, 20), slice(0, 16))
    assert info.amps[1].detsec.slices == (slice(0, 20), slice(16, 32)) and info.amps[1].detsec.flip_x


# --- bad files ----------------------------------------------------------------------------------


def test_truncated_files_are_refused(tmp_path):
    for compress, name in ((None, "t.fits"), ("fz", "t.fits.fz"), ("gz", "t.fits.gz")):
        p = make_raw(tmp_path / name, compress=compress)
        data = p.read_bytes()
        p.write_bytes(data[: len(data) - (40 if compress == "gz" else 3000)])
        with pytest.raises(InputError, match="truncated") as exc:
            read_header(p)
        assert str(p) in str(exc.value) and "\n" not in str(exc.value)


def test_truncated_inside_padding_of_last_block_is_refused(tmp_path):
    p = make_raw(tmp_path / "t.fits")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 2880 + 100])  # the last data block cut short
    with pytest.raises(InputError, match="truncated"):
        read_header(p)


def test_non_fits_and_missing_files(tmp_path):
    txt = tmp_path / "notes.fits"
    txt.write_text("this is not FITS\n" * 400)
    with pytest.raises(InputError, match="notes.fits: not a readable FITS file"):
        read_header(txt)
    with pytest.raises(InputError, match="file not found"):
        read_header(tmp_path / "absent.fits")
    empty = tmp_path / "empty.fits"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="not a FITS file"):
        read_header(empty)


def test_pixels_in_primary_and_extensions_refused(tmp_path):
    p = make_raw(tmp_path / "x.fits", layout="primary")
    with fits.open(p, mode="append") as hl:
        hl.append(fits.ImageHDU(np.zeros((4, 4), np.int16)))
    with pytest.raises(InputError, match="NAXIS: pixels in both"):
        read_header(p)


def test_float_pixels_refused(tmp_path):
    p = make_raw(tmp_path / "f.fits", bitpix=-32)
    with pytest.raises(InputError, match=r"BITPIX: unsupported BITPIX -32"):
        read_header(p)


# --- frames shipped by PyPI packages --------------------------------------------------------------

SITE = Path(fits.__file__).resolve().parents[3]


def _ccdproc_frame() -> Path:
    p = SITE / "ccdproc" / "tests" / "data" / "a8280271.fits"
    if not p.exists():
        pytest.skip("ccdproc test data not installed")
    return p


def test_ccdproc_raw_frame_names_missing_keyword():
    """A real SAAO 1.0m frame (TRIMSEC/BIASSEC, BZERO 32768, sexagesimal RA) lacks EXPID."""
    with pytest.raises(InputError) as exc:
        read_header(_ccdproc_frame())
    assert "a8280271.fits: EXPID: missing required keyword" in str(exc.value)


def test_ccdproc_raw_frame_reads_once_completed(tmp_path):
    """With the keywords minidr needs added, the real frame reads: TRIMSEC, sexagesimal RA, uint16."""
    p = tmp_path / "a8280271.fits"
    shutil.copy(_ccdproc_frame(), p)
    with fits.open(p, mode="update") as hl:
        h = hl[0].header
        h["EXPID"], h["CCDNUM"], h["FILTER"], h["SATURATE"] = 8280271, 1, "V", 65535.0
        h.update({k: v for k, v in WCS.items()})
    info = read_header(p)
    assert info.detector == 1 and info.instrument == "STE3 CCD" and info.mjd == 56486.0
    assert info.ra == pytest.approx(15 * (22 + 4 / 60 + 8 / 3600)) and info.dec == pytest.approx(-(55 / 60 + 31 / 3600))
    amp = info.amps[0]
    assert amp.datasec.slices == (slice(0, 520), slice(16, 528)) and amp.biassec.slices == (slice(0, 520), slice(3, 13))
    assert info.shape == (520, 512) and amp.gain == 1.9 and amp.rdnoise == 5.0
    raw = read_raw(p)
    with fits.open(_ccdproc_frame()) as hl:
        np.testing.assert_array_equal(raw.amp_pixels[0], hl[0].data.astype(np.int32))


def test_astropy_hst_raw_names_missing_keyword():
    p = SITE / "astropy" / "io" / "fits" / "tests" / "data" / "o4sp040b0_raw.fits"
    if not p.exists():
        pytest.skip("astropy test data not installed")
    with pytest.raises(InputError, match="o4sp040b0_raw.fits: IMAGETYP: missing required keyword"):
        read_header(p)


# --- property: any layout written by a camera reads back exactly -------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n_amps=st.integers(1, 4), flip=st.booleans(), compress=st.sampled_from([None, "gz", "fz"]),
       bitpix=st.sampled_from([16, 32]), ny=st.integers(2, 12), nx=st.integers(2, 12), over=st.integers(1, 5),
       layout=st.sampled_from(["mef", "primary"]))
def test_written_frames_read_back_exactly(tmp_path, n_amps, flip, compress, bitpix, ny, nx, over, layout):
    p = make_raw(tmp_path / f"h{n_amps}{flip}{compress}{bitpix}{ny}{nx}{over}{layout}.fits", n_amps=n_amps,
                 flip=flip, compress=compress, bitpix=bitpix, ny=ny, nx_data=nx, overscan=over, layout=layout)
    raw = read_raw(p)
    n = 1 if layout == "primary" else n_amps
    assert raw.info.shape == (ny, n * nx) and len(raw.amp_pixels) == n and raw.info.bitpix == bitpix
    covered = np.zeros(raw.info.shape, int)
    for i, (amp, arr) in enumerate(zip(raw.info.amps, raw.amp_pixels)):
        np.testing.assert_array_equal(arr, amp_pixels(i, ny, nx + over))
        assert arr[amp.datasec.slices].shape == amp.detsec.shape
        assert amp.detsec.flip_x == (flip and i % 2 == 1 and n > 1)
        covered[amp.detsec.slices] += 1
    assert (covered == 1).all()
