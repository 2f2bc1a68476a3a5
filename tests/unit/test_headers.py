"""minidr.raw.headers: IRAF sections and keyword rules, on plain dict headers (no files)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidr.errors import InputError
from minidr.products import Section
from minidr.raw.headers import HduHeader, check_inside, format_section, normalize_imagetyp, parse_section, raw_info

P = "raw/x.fits"


# --- IRAF sections ------------------------------------------------------------------------------


def test_section_examples():
    assert parse_section("[1:1,1:1]") == Section(0, 1, 0, 1)
    s = parse_section("[  17: 528,   1: 520]")
    assert (s.y0, s.y1, s.x0, s.x1) == (0, 520, 16, 528) and s.shape == (520, 512)
    r = parse_section("[1024:1,1:10]")
    assert (r.x0, r.x1, r.flip_x, r.flip_y) == (0, 1024, True, False)
    r = parse_section("[1:8,20:11]")
    assert (r.y0, r.y1, r.flip_x, r.flip_y) == (10, 20, False, True)


@pytest.mark.parametrize("bad", ["[0:10,1:5]", "1:10,1:5", "[a:b,1:2]", "[1:10]", "[1:10,1:5", "", "[1.5:3,1:2]"])
def test_malformed_sections_name_keyword(bad):
    with pytest.raises(InputError) as exc:
        parse_section(bad, keyword="BIASSEC", path=P)
    assert str(exc.value).startswith(f"{P}: BIASSEC: ")


def test_non_string_section():
    with pytest.raises(InputError, match="DATASEC"):
        parse_section(10, keyword="DATASEC", path=P)


coord = st.integers(1, 5000)


@settings(deadline=None)
@given(coord, coord, coord, coord)
def test_section_round_trip_and_size(x1, x2, y1, y2):
    text = f"[{x1}:{x2},{y1}:{y2}]"
    s = parse_section(text)
    assert format_section(s) == text
    assert s.shape == (abs(y2 - y1) + 1, abs(x2 - x1) + 1)
    assert s.flip_x == (x1 > x2) and s.flip_y == (y1 > y2)
    assert s.x0 == min(x1, x2) - 1 and s.y0 == min(y1, y2) - 1  # 1-based -> 0-based
    assert s.x1 == max(x1, x2) and s.y1 == max(y1, y2)          # inclusive -> half-open


@settings(deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), st.data())
def test_sections_touching_the_edge_are_inside_one_beyond_is_not(nx, ny, data):
    x1 = data.draw(st.integers(1, nx))
    y1 = data.draw(st.integers(1, ny))
    x2 = data.draw(st.integers(x1, nx))
    y2 = data.draw(st.integers(y1, ny))
    check_inside(parse_section(f"[{x1}:{x2},{y1}:{y2}]"), (ny, nx), text="", keyword="DATASEC", path=P)
    check_inside(parse_section(f"[{x1}:{nx},{y1}:{ny}]"), (ny, nx), text="", keyword="DATASEC", path=P)
    for text in (f"[{x1}:{nx + 1},{y1}:{y2}]", f"[{x1}:{x2},{y1}:{ny + 1}]"):
        with pytest.raises(InputError, match=r"DATASEC: .* lies outside the %dx%d pixel array" % (nx, ny)):
            check_inside(parse_section(text), (ny, nx), text=text, keyword="DATASEC", path=P)


# --- image types --------------------------------------------------------------------------------


@settings(deadline=None)
@given(st.sampled_from([("object", "science"), ("science", "science"), ("bias", "bias"), ("zero", "bias"),
                        ("dark", "dark"), ("flat", "flat"), ("domeflat", "flat"), ("skyflat", "flat")]),
       st.data())
def test_imagetyp_synonyms_any_case(pair, data):
    word, kind = pair
    flips = data.draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    cased = "".join(c.upper() if f else c for c, f in zip(word, flips))
    assert normalize_imagetyp(f" {cased}  ") == kind


@pytest.mark.parametrize("bad", ["arc", "FOCUS", "", "lamp flat x"])
def test_unknown_imagetyp(bad):
    with pytest.raises(InputError, match=f"{P}: IMAGETYP: unknown image type"):
        normalize_imagetyp(bad, P)


# --- whole frames ---------------------------------------------------------------------------------


def frame(n_amps=2, ny=20, nx=16, over=4, imagetyp="object", flip=True):
    """Headers of a good frame: primary dict and one HduHeader per amplifier (amps side by side)."""
    primary = {"IMAGETYP": imagetyp, "EXPTIME": 30.0, "MJD-OBS": 60000.5, "FILTER": "r", "EXPID": 42,
               "DETECTOR": 3, "INSTRUME": "CAM", "RA": 150.0, "DEC": -1.5, "CTYPE1": "RA---TAN",
               "CTYPE2": "DEC--TAN", "CRVAL1": 150.0, "CRVAL2": -1.5, "CRPIX1": 16.0, "CRPIX2": 10.0,
               "CD1_1": -5e-5, "CD1_2": 0.0, "CD2_1": 0.0, "CD2_2": 5e-5, "NAXIS": 0}
    hdus = []
    for i in range(n_amps):
        x1, x2 = i * nx + 1, (i + 1) * nx
        if flip and i % 2:
            x1, x2 = x2, x1
        hdus.append(HduHeader(i + 1, {"BITPIX": 16, "BZERO": 32768, "NAXIS": 2, "DATASEC": f"[1:{nx},1:{ny}]",
                                      "BIASSEC": f"[{nx + 1}:{nx + over},1:{ny}]", "DETSEC": f"[{x1}:{x2},1:{ny}]",
                                      "GAIN": 1.2, "RDNOISE": 4.0, "SATURATE": 60000.0}, (ny, nx + over)))
    return primary, hdus


def with_amp(hdus, i, **kw):
    out = list(hdus)
    hdr = {k: v for k, v in out[i].header.items() if kw.get(k, 0) is not None}
    hdr.update({k: v for k, v in kw.items() if v is not None})
    out[i] = HduHeader(out[i].index, hdr, out[i].shape)
    return out


def refused(primary, hdus, keyword, match=""):
    with pytest.raises(InputError) as exc:
        raw_info(P, primary, hdus)
    msg = str(exc.value)
    assert msg.startswith(f"{P}: {keyword}: "), msg
    assert match in msg and "\n" not in msg
    return msg


def test_good_frame():
    primary, hdus = frame()
    info = raw_info(P, primary, hdus)
    assert (info.imagetyp, info.visit, info.detector, info.band, info.exptime) == ("science", 42, 3, "r", 30.0)
    assert info.shape == (20, 32) and info.bitpix == 16 and info.instrument == "CAM"
    assert info.wcs_header["CTYPE1"] == "RA---TAN" and info.wcs_header["NAXIS1"] == 32
    assert info.amps[0].gain == 1.2 and info.amps[1].detsec.flip_x
    assert info.midpoint_mjd == pytest.approx(60000.5 + 15 / 86400)


@pytest.mark.parametrize("key", ["IMAGETYP", "EXPID", "EXPTIME", "MJD-OBS", "FILTER", "RA", "DEC", "CTYPE1",
                                 "CRVAL1", "CRPIX2", "DETECTOR"])
def test_missing_exposure_keyword(key):
    primary, hdus = frame()
    del primary[key]
    refused(primary, hdus, key, "missing required keyword")


@pytest.mark.parametrize("key", ["DATASEC", "BIASSEC", "DETSEC", "GAIN", "RDNOISE", "SATURATE"])
def test_missing_amp_keyword_names_keyword_and_hdu(key):
    primary, hdus = frame()
    hdus = with_amp(hdus, 1, **{key: None})
    msg = refused(primary, hdus, key, "missing required keyword")
    assert msg.endswith("(HDU 2)")


@pytest.mark.parametrize("key,value,match", [
    ("EXPID", "abc", "not an integer"), ("EXPID", 4.5, "not an integer"), ("EXPID", -1, "outside"),
    ("DETECTOR", 1000, "outside"), ("EXPTIME", "long", "not a number"), ("EXPTIME", -1.0, "negative"),
    ("MJD-OBS", "yesterday", "not a number"), ("RA", "25:00:00", "outside"), ("DEC", "+95:00:00", "outside"),
    ("RA", "ten", "cannot parse"), ("FILTER", "g/r", "band name"), ("CTYPE1", "RA---SIN", "TAN"),
    ("CD1_1", 0.0, "singular"), ("IMAGETYP", "arc", "unknown image type"),
])
def test_malformed_exposure_keyword(key, value, match):
    primary, hdus = frame()
    primary[key] = value
    if key == "CD1_1":
        primary["CD1_2"] = primary["CD2_2"] = 0.0
    refused(primary, hdus, key, match)


@pytest.mark.parametrize("key,value,match", [
    ("DATASEC", "[1:2100,1:20]", "[1:2100,1:20] lies outside the 20x20 pixel array"),
    ("BIASSEC", "[17:21,1:20]", "lies outside the 20x20 pixel array"),
    ("BIASSEC", "[15:20,1:20]", "overlaps DATASEC"),
    ("DATASEC", "[16:1,1:20]", "runs backwards"),
    ("DETSEC", "[1:10,1:20]", "binning"),
    ("GAIN", 0.0, "must be > 0"), ("GAIN", True, "not a number"), ("RDNOISE", -2.0, "must be >= 0"), ("SATURATE", "high", "not a number"),
    ("BITPIX", -32, "unsupported BITPIX -32"), ("BITPIX", 8, "unsupported BITPIX 8"),
    ("BZERO", 100, "not supported"), ("BSCALE", 2.0, "scaled"),
])
def test_malformed_amp_keyword(key, value, match):
    primary, hdus = frame()
    refused(primary, with_amp(hdus, 0, **{key: value}), key, match)


def test_datasec_touching_edge_ok_one_beyond_refused():
    primary, hdus = frame(n_amps=1, flip=False)
    raw_info(P, primary, with_amp(hdus, 0, DATASEC="[1:16,1:20]", BIASSEC="[17:20,1:20]"))
    refused(primary, with_amp(hdus, 0, DATASEC="[1:16,1:21]", DETSEC="[1:16,1:21]"), "DATASEC", "outside")
    refused(primary, with_amp(hdus, 0, BIASSEC="[17:21,1:20]"), "BIASSEC", "outside")


def test_trimsec_and_ccdnum_and_primary_fallbacks():
    primary, hdus = frame(n_amps=1, flip=False)
    del primary["DETECTOR"]
    primary.update(CCDNUM=7, GAIN=2.5, RDNOISE=3.0)
    hdus = with_amp(hdus, 0, DATASEC=None, TRIMSEC="[1:16,1:20]", GAIN=None, RDNOISE=None, DETSEC=None)
    info = raw_info(P, primary, hdus)
    assert info.detector == 7 and info.amps[0].gain == 2.5 and info.amps[0].rdnoise == 3.0
    assert info.amps[0].datasec.shape == (20, 16) and info.shape == (20, 16)
    # the amplifier's own value wins over the primary's
    info = raw_info(P, primary, with_amp(hdus, 0, GAIN=1.7))
    assert info.amps[0].gain == 1.7


def test_filter_optional_on_bias_and_dark_required_on_flat():
    for kind, expected in (("zero", "bias"), ("DARK", "dark")):
        primary, hdus = frame(imagetyp=kind)
        for key in ("FILTER", "RA", "DEC", "CTYPE1", "CD1_1"):
            del primary[key]
        info = raw_info(P, primary, hdus)
        assert info.imagetyp == expected and info.band is None and info.wcs_header is None and info.ra is None
    primary, hdus = frame(imagetyp="bias")
    primary.update(RA="dome", DEC=45.0)  # a calibration frame's pointing is informative only
    info = raw_info(P, primary, hdus)
    assert info.ra is None and info.dec is None
    primary, hdus = frame(imagetyp="DomeFlat")
    del primary["CTYPE1"]
    assert raw_info(P, primary, hdus).band == "r"  # no WCS needed on flats
    del primary["FILTER"]
    refused(primary, hdus, "FILTER", "science and flat")


def test_sexagesimal_pointing_is_hours_for_ra():
    primary, hdus = frame()
    primary.update(RA="10:00:00", DEC="-01:30:00")
    info = raw_info(P, primary, hdus)
    assert info.ra == pytest.approx(150.0) and info.dec == pytest.approx(-1.5)


def test_cdelt_pc_wcs_is_converted_to_cd():
    primary, hdus = frame()
    for key in ("CD1_1", "CD1_2", "CD2_1", "CD2_2"):
        del primary[key]
    primary.update(CDELT1=-5e-5, CDELT2=5e-5)
    w = raw_info(P, primary, hdus).wcs_header
    assert (w["CD1_1"], w["CD1_2"], w["CD2_1"], w["CD2_2"]) == (-5e-5, 0.0, 0.0, 5e-5)


def test_detsec_overlap_and_gap_refused():
    primary, hdus = frame(n_amps=2)
    refused(primary, with_amp(hdus, 1, DETSEC="[9:24,1:20]"), "DETSEC", "overlaps")
    refused(primary, with_amp(hdus, 1, DETSEC="[18:33,1:20]"), "DETSEC", "gaps")


def test_no_pixels_refused():
    primary, _ = frame()
    refused(primary, [], "NAXIS", "no image data")


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(2, 12), st.integers(2, 12), st.data())
def test_amp_grids_assemble_exactly(ax, ay, nx, ny, data):
    """Any grid of amplifiers, in any file order, with any read-out directions, tiles the detector."""
    order = data.draw(st.permutations(range(ax * ay)))
    primary, _ = frame()
    hdus = []
    expect = {}
    for k, cell in enumerate(order):
        i, j = cell % ax, cell // ax
        fx, fy = data.draw(st.booleans()), data.draw(st.booleans())
        xs = (i * nx + 1, (i + 1) * nx)
        ys = (j * ny + 1, (j + 1) * ny)
        det = f"[{xs[::-1][0] if fx else xs[0]}:{xs[0] if fx else xs[1]},{ys[1] if fy else ys[0]}:{ys[0] if fy else ys[1]}]"
        hdr = {"BITPIX": 16, "NAXIS": 2, "DATASEC": f"[2:{nx + 1},1:{ny}]", "BIASSEC": f"[1:1,1:{ny}]",
               "DETSEC": det, "GAIN": 1.0, "RDNOISE": 1.0, "SATURATE": 1000.0, "EXTNAME": f"A{cell}"}
        hdus.append(HduHeader(k + 1, hdr, (ny, nx + 1)))
        expect[f"A{cell}"] = (Section(j * ny, (j + 1) * ny, i * nx, (i + 1) * nx, fx, fy))
    info = raw_info(P, primary, hdus)
    assert info.shape == (ay * ny, ax * nx)
    for amp in info.amps:
        assert amp.detsec == expect[amp.name]
        assert amp.datasec == Section(0, ny, 1, nx + 1) and amp.biassec == Section(0, ny, 0, 1)
