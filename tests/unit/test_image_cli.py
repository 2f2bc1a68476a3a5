"""``minidr detect`` and ``minidr.image.detect`` on a small FITS image with a WCS."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from naive_image import render_scene  # noqa: E402

from minidr.cli import main  # noqa: E402
from minidr.image import detect  # noqa: E402


def _wcs(shape):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 2.0]
    w.wcs.crpix = [shape[1] / 2, shape[0] / 2]
    w.wcs.cd = [[-0.2 / 3600, 0], [0, 0.2 / 3600]]
    return w


@pytest.fixture(scope="module")
def fits_image(tmp_path_factory):
    s = render_scene(shape=(300, 420), seed=11, n_stars=90, n_galaxies=5, n_cosmics=0, n_saturated=0)
    p = tmp_path_factory.mktemp("det") / "img.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(s["image"], header=_wcs(s["image"].shape).to_header())]).writeto(p)
    return p, s


def test_detect_function_adds_radec(fits_image):
    _, s = fits_image
    w = _wcs(s["image"].shape)
    src = detect(s["image"], wcs=w)
    assert {"ra", "dec", "x", "y", "psfFlux", "flags"} <= set(src.dtype.names)
    ra, dec = w.all_pix2world(src["x"], src["y"], 0)
    assert np.allclose(src["ra"], ra) and np.allclose(src["dec"], dec)
    assert len(src) >= 40


def test_cli_csv_parquet_fits(fits_image, tmp_path, capsys):
    p, _ = fits_image
    _run(["detect", str(p), "-q"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("x,y,ra,dec,") and len(out) > 40
    for ext in ("parquet", "fits", "csv"):
        f = tmp_path / f"cat.{ext}"
        _run(["detect", str(p), "-o", str(f), "-q"])
        assert f.stat().st_size > 0
    import pyarrow.parquet as pq

    t = pq.read_table(tmp_path / "cat.parquet")
    assert t.num_rows == len(out) - 1


def _run(argv):
    try:
        main(argv)
    except SystemExit as exc:
        assert exc.code in (0, None)


def test_cli_bad_file_one_line_error(tmp_path):
    bad = tmp_path / "bad.fits"
    bad.write_text("not a fits file")
    r = subprocess.run([sys.executable, "-m", "minidr", "detect", str(bad)], capture_output=True, text=True)
    assert r.returncode != 0
    assert len(r.stderr.strip().splitlines()) == 1 and "bad.fits" in r.stderr
