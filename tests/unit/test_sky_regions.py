"""Sky kernels and regions: exact tests against independent numpy/astropy versions, and the
coarse HEALPix coverage is always a superset of the exact region."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from matplotlib.path import Path as MplPath

from minidr.errors import InputError
from minidr.sky.healpix import healpix29
from minidr.sky.regions import (
    Box,
    Cone,
    Polygon,
    RegionMessage,
    ang_sep,
    coarsen_ranges,
    merge_ranges,
    radec_to_xyz,
    xyz_to_radec,
)

SETTINGS = dict(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- slow copies ------------------------------------------------------------------------------


def naive_sep(ra1, dec1, ra2, dec2):
    """Separation [deg] from 3-vectors: atan2(|a x b|, a . b)."""
    a = radec_to_xyz(np.atleast_1d(ra1) + 0 * np.atleast_1d(ra2), np.atleast_1d(dec1) + 0 * np.atleast_1d(dec2))
    b = radec_to_xyz(np.atleast_1d(ra2) + 0 * np.atleast_1d(ra1), np.atleast_1d(dec2) + 0 * np.atleast_1d(dec1))
    return np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b), axis=1), np.sum(a * b, axis=1)))


def naive_box(ra, dec, ra_min, dec_min, ra_max, dec_max):
    ok = (dec >= dec_min) & (dec <= dec_max)
    if ra_max - ra_min >= 360:
        return ok
    lo, hi, r = ra_min % 360, ra_max % 360, ra % 360
    return ok & (((r >= lo) & (r <= hi)) if lo <= hi else ((r >= lo) | (r <= hi)))


def naive_polygon(ra, dec, vra, vdec):
    """Gnomonic projection about the vertex mean + matplotlib's planar point-in-polygon."""
    v = radec_to_xyz(vra, vdec)
    c = v.sum(axis=0)
    c /= np.linalg.norm(c)
    e1 = np.cross([0.0, 0.0, 1.0], c) if abs(c[2]) < 0.9 else np.cross([1.0, 0.0, 0.0], c)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(c, e1)
    p = radec_to_xyz(ra, dec)
    w = p @ c
    proj = np.stack([(p @ e1) / np.where(w > 0, w, 1), (p @ e2) / np.where(w > 0, w, 1)], axis=1)
    vp = np.stack([(v @ e1) / (v @ c), (v @ e2) / (v @ c)], axis=1)
    return (w > 0) & MplPath(vp).contains_points(proj)


def in_ranges(h, lo, hi):
    i = np.searchsorted(lo, h, side="right") - 1
    return (i >= 0) & (h < hi[np.maximum(i, 0)])


def points_around(rng, ra0, dec0, spread, n=3000):
    ra = np.mod(ra0 + rng.normal(0, 1, n) * spread / max(np.cos(np.radians(dec0)), 0.02), 360.0)
    dec = np.clip(dec0 + rng.normal(0, 1, n) * spread, -90, 90)
    return ra, dec


centres = st.tuples(
    st.one_of(st.floats(0, 360, exclude_max=True), st.sampled_from([0.0, 359.9999, 0.0001, 180.0])),
    st.one_of(st.floats(-90, 90), st.sampled_from([89.999, -89.999, 90.0, -90.0, 0.0])),
)
radii = st.one_of(st.sampled_from([0.1 / 3600, 1 / 60, 30.0]), st.floats(1e-5, 40.0))


# -- ang_sep ----------------------------------------------------------------------------------


@settings(**SETTINGS)
@given(centres, st.floats(-9, np.log10(179.99)), st.floats(0, 360))
def test_ang_sep_matches_astropy(c, log_sep, pa_deg):
    """ang_sep agrees with astropy to 1e-9 deg from 1e-6 arcsec to 179.99 deg."""
    sep = 10**log_sep
    sep = max(sep, 1e-6 / 3600)
    a = SkyCoord(c[0] * u.deg, c[1] * u.deg)
    b = a.directional_offset_by(pa_deg * u.deg, sep * u.deg)
    ours = ang_sep(c[0], c[1], b.ra.deg, b.dec.deg)
    ref = a.separation(b).deg
    assert abs(float(ours) - ref) < 1e-9


def test_ang_sep_extremes_and_broadcasting():
    assert ang_sep(10, 20, 10, 20) == 0.0
    assert abs(ang_sep(0, 0, 180, 0) - 180.0) < 1e-12
    assert abs(ang_sep(0, 90, 123, 90)) < 1e-12
    tiny = 1e-6 / 3600
    assert abs(ang_sep(0, 0, tiny, 0) - tiny) < 1e-20
    out = ang_sep(np.zeros((2, 3)), 0.0, np.arange(3.0), 0.0)
    assert out.shape == (2, 3) and np.allclose(out[1], [0, 1, 2])


def test_xyz_roundtrip():
    rng = np.random.default_rng(3)
    ra, dec = rng.uniform(0, 360, 1000), rng.uniform(-90, 90, 1000)
    r2, d2 = xyz_to_radec(radec_to_xyz(ra, dec))
    assert np.max(ang_sep(ra, dec, r2, d2)) < 1e-10


# -- exact masks and coarse coverage ----------------------------------------------------------


@settings(**SETTINGS)
@given(centres, radii, st.integers(0, 2**31))
def test_cone_exact_and_covered(c, r, seed):
    rng = np.random.default_rng(seed)
    cone = Cone(c[0], c[1], r)
    ra, dec = points_around(rng, cone.ra, cone.dec, 1.5 * r)
    sep = naive_sep(cone.ra, cone.dec, ra, dec)
    clear = np.abs(sep - r) > 1e-9 * max(r, 1e-3)
    got = cone.contains(ra, dec)
    assert np.array_equal(got[clear], (sep <= r)[clear])
    lo, hi = cone.ranges29()
    assert np.all(in_ranges(healpix29(ra, dec), lo, hi)[got]), "coverage must be a superset"


@settings(**SETTINGS)
@given(centres, st.floats(1e-4, 40), st.floats(1e-4, 20), st.integers(0, 2**31))
def test_box_exact_and_covered(c, w, h, seed):
    rng = np.random.default_rng(seed)
    ra_min, ra_max = c[0] - w / 2, c[0] + w / 2  # may cross 0: ra_min < 0 or ra_max > 360
    dec_min, dec_max = max(-90, c[1] - h / 2), min(90, c[1] + h / 2)
    box = Box(ra_min, dec_min, ra_max, dec_max)
    ra, dec = points_around(rng, c[0] % 360, c[1], max(w, h))
    got = box.contains(ra, dec)
    ref = naive_box(ra, dec, ra_min, dec_min, ra_max, dec_max)
    assert np.array_equal(got, ref)
    lo, hi = box.ranges29()
    assert np.all(in_ranges(healpix29(ra, dec), lo, hi)[got])


def test_box_wraps_when_min_exceeds_max():
    box = Box(350, -5, 10, 5)
    m = box.contains([355, 5, 0, 20, 180, 349.9], [0, 0, 0, 0, 0, 0])
    assert m.tolist() == [True, True, True, False, False, False]
    assert Box(0, -90, 360, 90).contains([123.4], [-89.0]).tolist() == [True]


@settings(**SETTINGS)
@given(centres, st.floats(1e-4, 30), st.integers(3, 9), st.booleans(), st.integers(0, 2**31))
def test_polygon_exact_and_covered(c, r, nv, concave, seed):
    rng = np.random.default_rng(seed)
    ra0, dec0 = c[0] % 360, float(np.clip(c[1], -89.0, 89.0))
    ang = np.sort(rng.uniform(0, 2 * np.pi, nv))
    rad = r * (np.where(np.arange(nv) % 2 == 1, 0.35, 1.0) if concave else rng.uniform(0.6, 1.0, nv))
    centre = SkyCoord(ra0 * u.deg, dec0 * u.deg)
    verts = centre.directional_offset_by(np.degrees(ang) * u.deg, rad * u.deg)
    vra, vdec = verts.ra.deg, verts.dec.deg
    try:
        poly = Polygon(tuple(np.ravel(np.column_stack([vra, vdec]))))
    except InputError:
        return  # degenerate (e.g. two vertices nearly equal): refusal is the right answer
    ra, dec = points_around(rng, ra0, dec0, 1.3 * r)
    got = poly.contains(ra, dec)
    ref = naive_polygon(ra, dec, vra, vdec)
    assert np.mean(got != ref) < 1e-3  # only points on an edge (to rounding) may differ
    lo, hi = poly.ranges29()
    assert np.all(in_ranges(healpix29(ra, dec), lo, hi)[got])


def test_concave_polygon_notch_is_outside():
    # a "U" shape: the notch between the arms is outside
    verts = (0, 0, 3, 0, 3, 3, 2, 3, 2, 1, 1, 1, 1, 3, 0, 3)
    poly = Polygon(verts)
    assert poly.contains([0.5, 1.5, 2.5, 1.5], [2.0, 2.0, 2.0, 0.5]).tolist() == [True, False, True, True]


def test_validators_name_the_field():
    with pytest.raises(InputError, match="cone dec"):
        Cone(10, 91, 1)
    with pytest.raises(InputError, match="radius"):
        Cone(10, 0, 0)
    with pytest.raises(InputError, match="dec_min"):
        Box(0, 10, 5, -10)
    with pytest.raises(InputError, match="pairs"):
        Polygon((1, 2, 3, 4, 5))
    with pytest.raises(InputError, match="at least 3"):
        Polygon((1, 2, 3, 4))
    with pytest.raises(InputError, match=RegionMessage.POLY_HEMISPHERE.value[:20]):
        Polygon((0, 0, 120, 0, 240, 0))
    with pytest.raises(InputError, match="finite"):
        Cone(float("nan"), 0, 1)


def test_range_helpers():
    lo, hi = merge_ranges([5, 0, 3, 20], [8, 2, 5, 30])
    assert lo.tolist() == [0, 3, 20] and hi.tolist() == [2, 8, 30]
    lo2, hi2 = coarsen_ranges(lo, hi, 2)
    assert lo2.tolist() == [0, 20] and hi2.tolist() == [8, 30]
