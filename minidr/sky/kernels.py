"""Pure numba kernels of sky geometry: angles in degrees, arrays in, arrays out.

Conventions: RA/Dec in degrees (ICRS), unit vectors ``(x, y, z)`` with ``z`` towards the
north pole and ``x`` towards RA = 0. Separations use the Vincenty (atan2) form, which is
accurate to rounding at every separation from 0 to 180 degrees (haversine loses precision
near 180 degrees, the cosine law near 0).

Regions:

* cone: ``ang_sep(p, centre) <= radius`` (tested as a haversine inequality, exact and cheap);
* box: ``dec_min <= dec <= dec_max`` and RA in ``[ra_min, ra_max]``, which crosses RA = 0
  when ``ra_min > ra_max`` (after reducing both to [0, 360)); a span of 360 or more is
  the whole RA circle;
* polygon: vertices joined by great-circle arcs (the minor arc), concave allowed; the
  polygon must fit in an open hemisphere around the mean of its vertices. Inside is
  decided by a gnomonic projection about that mean (it maps great circles onto straight
  lines) and an even-odd crossing test.

Only numpy, numba, math and :mod:`minidr._jit` are used here.
"""

from __future__ import annotations

import math

import numpy as np

from minidr._jit import njit, prange

DEG = math.pi / 180.0


@njit
def ang_sep_scalar(ra1, dec1, ra2, dec2):
    """Angular separation [deg] of two positions [deg] (Vincenty form)."""
    dra = (ra2 - ra1) * DEG
    d1 = dec1 * DEG
    d2 = dec2 * DEG
    s1 = math.sin(d1)
    c1 = math.cos(d1)
    s2 = math.sin(d2)
    c2 = math.cos(d2)
    sdr = math.sin(dra)
    cdr = math.cos(dra)
    a = c2 * sdr
    b = c1 * s2 - s1 * c2 * cdr
    num = math.sqrt(a * a + b * b)
    den = s1 * s2 + c1 * c2 * cdr
    return math.atan2(num, den) / DEG


@njit(parallel=True)
def ang_sep(ra1, dec1, ra2, dec2):
    """Elementwise separation [deg] of 1-D arrays of equal length [deg]."""
    n = ra1.shape[0]
    out = np.empty(n, dtype=np.float64)
    for i in prange(n):
        out[i] = ang_sep_scalar(ra1[i], dec1[i], ra2[i], dec2[i])
    return out


@njit
def radec_to_xyz(ra, dec):
    """Unit vectors (n, 3) of positions [deg]."""
    n = ra.shape[0]
    out = np.empty((n, 3), dtype=np.float64)
    for i in range(n):
        r = ra[i] * DEG
        d = dec[i] * DEG
        cd = math.cos(d)
        out[i, 0] = cd * math.cos(r)
        out[i, 1] = cd * math.sin(r)
        out[i, 2] = math.sin(d)
    return out


@njit
def xyz_to_radec(xyz):
    """RA in [0, 360) and Dec [deg] of vectors (n, 3) (need not be normalised)."""
    n = xyz.shape[0]
    ra = np.empty(n, dtype=np.float64)
    dec = np.empty(n, dtype=np.float64)
    for i in range(n):
        x = xyz[i, 0]
        y = xyz[i, 1]
        z = xyz[i, 2]
        r = math.atan2(y, x) / DEG
        if r < 0.0:
            r += 360.0
        if r >= 360.0:
            r -= 360.0
        ra[i] = r
        dec[i] = math.atan2(z, math.sqrt(x * x + y * y)) / DEG
    return ra, dec


@njit(parallel=True)
def cone_mask(ra, dec, ra0, dec0, radius):
    """True where the position [deg] lies within ``radius`` [deg] of (ra0, dec0) [deg].

    Haversine inequality ``hav(sep) <= hav(radius)``: monotonic on [0, 180] degrees, so it
    is the exact test of ``ang_sep <= radius`` without an inverse trig per row.
    """
    n = ra.shape[0]
    out = np.empty(n, dtype=np.bool_)
    if radius >= 180.0:
        out[:] = True
        return out
    sr = math.sin(0.5 * radius * DEG)
    lim = sr * sr
    cd0 = math.cos(dec0 * DEG)
    for i in prange(n):
        sd = math.sin(0.5 * (dec[i] - dec0) * DEG)
        sa = math.sin(0.5 * (ra[i] - ra0) * DEG)
        h = sd * sd + math.cos(dec[i] * DEG) * cd0 * sa * sa
        out[i] = h <= lim
    return out


@njit
def _ra_norm(x):
    r = x - 360.0 * math.floor(x / 360.0)
    if r >= 360.0:
        r -= 360.0
    return r


@njit(parallel=True)
def box_mask(ra, dec, ra_min, dec_min, ra_max, dec_max):
    """True where the position [deg] lies in the RA/Dec box [deg] (RA wrap when ra_min > ra_max)."""
    n = ra.shape[0]
    out = np.empty(n, dtype=np.bool_)
    full = (ra_max - ra_min) >= 360.0
    lo = _ra_norm(ra_min)
    hi = _ra_norm(ra_max)
    for i in prange(n):
        d = dec[i]
        ok = d >= dec_min and d <= dec_max
        if ok and not full:
            r = _ra_norm(ra[i])
            if lo <= hi:
                ok = r >= lo and r <= hi
            else:
                ok = r >= lo or r <= hi
        out[i] = ok
    return out


@njit
def polygon_frame(vra, vdec):
    """Projection frame of a polygon [deg]: centre c and tangent axes e1, e2 (unit 3-vectors),
    and the vertices' gnomonic coordinates (u, v). ``ok`` is False when some vertex is not
    in the open hemisphere around the mean of the vertices (the polygon is then refused)."""
    m = vra.shape[0]
    xyz = radec_to_xyz(vra, vdec)
    c = np.zeros(3)
    for k in range(m):
        c += xyz[k]
    norm = math.sqrt(c[0] * c[0] + c[1] * c[1] + c[2] * c[2])
    ok = norm > 1e-12
    if ok:
        c /= norm
    else:
        c[2] = 1.0
    # e1 = normalised (z_axis x c) unless c is at a pole
    if abs(c[2]) < 0.9:
        e1 = np.array([-c[1], c[0], 0.0])
    else:
        e1 = np.array([0.0, -c[2], c[1]])
    e1 /= math.sqrt(e1[0] * e1[0] + e1[1] * e1[1] + e1[2] * e1[2])
    e2 = np.array([c[1] * e1[2] - c[2] * e1[1], c[2] * e1[0] - c[0] * e1[2], c[0] * e1[1] - c[1] * e1[0]])
    u = np.empty(m)
    v = np.empty(m)
    for k in range(m):
        w = xyz[k, 0] * c[0] + xyz[k, 1] * c[1] + xyz[k, 2] * c[2]
        if w <= 1e-9:
            ok = False
            w = 1e-9
        u[k] = (xyz[k, 0] * e1[0] + xyz[k, 1] * e1[1] + xyz[k, 2] * e1[2]) / w
        v[k] = (xyz[k, 0] * e2[0] + xyz[k, 1] * e2[1] + xyz[k, 2] * e2[2]) / w
    return c, e1, e2, u, v, ok


@njit
def _in_projected(px, py, u, v):
    """Even-odd crossing test of the point (px, py) against the closed polygon (u, v)."""
    m = u.shape[0]
    inside = False
    j = m - 1
    for k in range(m):
        uk = u[k]
        vk = v[k]
        uj = u[j]
        vj = v[j]
        if (vk > py) != (vj > py):
            xc = uk + (py - vk) * (uj - uk) / (vj - vk)
            if px < xc:
                inside = not inside
        j = k
    return inside


@njit
def _polygon_one(ra, dec, out, c, e1, e2, u, v):
    n = ra.shape[0]
    for i in range(n):
        r = ra[i] * DEG
        d = dec[i] * DEG
        cd = math.cos(d)
        x = cd * math.cos(r)
        y = cd * math.sin(r)
        z = math.sin(d)
        w = x * c[0] + y * c[1] + z * c[2]
        if w <= 0.0:
            out[i] = False
            continue
        px = (x * e1[0] + y * e1[1] + z * e1[2]) / w
        py = (x * e2[0] + y * e2[1] + z * e2[2]) / w
        out[i] = _in_projected(px, py, u, v)


@njit
def polygon_mask(ra, dec, vra, vdec):
    """True where the position [deg] lies inside the spherical polygon (vertices vra, vdec [deg]).

    Returns (mask, ok); ok is False if the polygon does not fit in a hemisphere.
    """
    out = np.zeros(ra.shape[0], dtype=np.bool_)
    c, e1, e2, u, v, ok = polygon_frame(vra, vdec)
    if ok:
        _polygon_one(ra, dec, out, c, e1, e2, u, v)
    return out, ok


@njit
def polygon_mask_rows(ra, dec, values, offsets):
    """Each row its own polygon: vertices ``values[offsets[i]:offsets[i+1]]`` as
    ``[ra1, dec1, ra2, dec2, ...]`` [deg]. Rows whose polygon is invalid (odd length, fewer
    than 3 vertices, not within a hemisphere) get False and ``bad[i] = True``.
    Consecutive rows with the same vertex list reuse its projection frame."""
    n = ra.shape[0]
    out = np.zeros(n, dtype=np.bool_)
    bad = np.zeros(n, dtype=np.bool_)
    prev_lo = -1
    prev_hi = -1
    ok = False
    c = np.zeros(3)
    e1 = np.zeros(3)
    e2 = np.zeros(3)
    u = np.zeros(0)
    v = np.zeros(0)
    one = np.empty(1, dtype=np.bool_)
    for i in range(n):
        lo = offsets[i]
        hi = offsets[i + 1]
        same = prev_lo >= 0 and (hi - lo) == (prev_hi - prev_lo)
        if same:
            for k in range(hi - lo):
                if values[lo + k] != values[prev_lo + k]:
                    same = False
                    break
        if not same:
            m2 = hi - lo
            if m2 % 2 != 0 or m2 < 6:
                ok = False
            else:
                vra = values[lo:hi:2].copy()
                vdec = values[lo + 1:hi:2].copy()
                c, e1, e2, u, v, ok = polygon_frame(vra, vdec)
            prev_lo = lo
            prev_hi = hi
        if not ok:
            bad[i] = True
            continue
        _polygon_one(ra[i:i + 1], dec[i:i + 1], one, c, e1, e2, u, v)
        out[i] = one[0]
    return out, bad
