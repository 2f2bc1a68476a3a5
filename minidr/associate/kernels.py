"""Numba kernels of association: pure functions on arrays (numpy, math, minidr._jit only).

Positions are unit vectors ``(x, y, z)``; closeness is tested with the squared chord
``|u_i - u_j|^2 <= chord2`` where ``chord2 = 4 sin^2(radius / 2)`` (exact at every
separation, precise at milli-arcsecond ones, unlike ``1 - dot``).

Two steps:

1. :func:`link_zones` - friends-of-friends components with linking length ``radius``:
   sources sorted by declination zone (height >= radius) then RA; each source is compared
   with the sources of its own zone (forward in RA) and of the next zone, inside an RA
   window widened by ``1 / cos(dec)``; RA wrap-around at 0/360 and zones touching a pole are
   handled. Union-find with the smallest index as root.
2. :func:`match_components` - inside each component, frames in order: each frame's sources are
   matched one-to-one to the component's objects (greedy by distance to the objects' weighted
   mean positions, within ``radius``); unmatched sources start new objects; object positions
   are updated after each frame. Components are independent (``prange``).
"""

from __future__ import annotations

import math

import numpy as np

from minidr._jit import njit, prange


@njit
def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit
def _union(parent, i, j):
    ri = _find(parent, i)
    rj = _find(parent, j)
    if ri < rj:
        parent[rj] = ri
    elif rj < ri:
        parent[ri] = rj


@njit
def _lower_bound(a, lo, hi, v):
    """First index in ``[lo, hi)`` with ``a[idx] >= v`` (``a`` sorted there)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit
def _scan(ra, x, y, z, parent, i, lo, hi, ra_lo, ra_hi, chord2):
    """Union ``i`` with every ``j`` in ``[lo, hi)`` with ``ra_lo <= ra[j] <= ra_hi`` and close."""
    j = _lower_bound(ra, lo, hi, ra_lo)
    xi = x[i]
    yi = y[i]
    zi = z[i]
    while j < hi and ra[j] <= ra_hi:
        if j != i:
            dx = x[j] - xi
            dy = y[j] - yi
            dz = z[j] - zi
            if dx * dx + dy * dy + dz * dz <= chord2:
                _union(parent, i, j)
        j += 1


@njit
def ra_halfwidth(dec_abs_max_deg, radius_deg):
    """Half-width in RA [deg] of any pair closer than ``radius_deg`` whose ``|dec|`` are at
    most ``dec_abs_max_deg`` (conservative); 360 when a pole is within reach."""
    d = dec_abs_max_deg + radius_deg
    if d >= 89.999999:
        return 360.0
    s = math.sin(math.radians(radius_deg)) / math.cos(math.radians(d))
    if s >= 1.0:
        return 360.0
    return math.degrees(math.asin(s)) * (1.0 + 1e-9) + 1e-12


@njit
def link_zones(zone_ids, zone_start, ra, x, y, z, height_deg, radius_deg):
    """Friends-of-friends component of each source.

    ``ra`` [deg, in [0, 360)] and unit vectors ``x, y, z`` are sorted by (zone, ra);
    ``zone_ids`` are the distinct zone numbers present (ascending; zone ``k`` covers
    declinations ``[k * height - 90, (k + 1) * height - 90)``), ``zone_start`` their first rows
    plus the total. ``height_deg >= radius_deg``. Returns the root (smallest row index) of
    each row's component (int64).
    """
    n = ra.size
    parent = np.arange(n, dtype=np.int64)
    half = 0.5 * math.radians(radius_deg)
    chord2 = 4.0 * math.sin(half) * math.sin(half)
    nz = zone_ids.size
    for k in range(nz):
        a = zone_start[k]
        b = zone_start[k + 1]
        zid = zone_ids[k]
        dec_lo = zid * height_deg - 90.0
        dec_hi = (zid + 2) * height_deg - 90.0
        dra = ra_halfwidth(max(abs(dec_lo), abs(dec_hi)), radius_deg)
        has_next = k + 1 < nz and zone_ids[k + 1] == zid + 1
        c = 0
        d = 0
        if has_next:
            c = zone_start[k + 1]
            d = zone_start[k + 2]
        for i in range(a, b):
            # own zone: forward in RA (pairs behind are found from the other side)
            if dra >= 180.0:
                _scan(ra, x, y, z, parent, i, i + 1, b, -1.0, 361.0, chord2)
            else:
                hi_ra = ra[i] + dra
                _scan(ra, x, y, z, parent, i, i + 1, b, -1.0, hi_ra, chord2)
                if hi_ra >= 360.0:
                    _scan(ra, x, y, z, parent, i, a, i, -1.0, hi_ra - 360.0, chord2)
            # next zone: both directions
            if has_next:
                if dra >= 180.0:
                    _scan(ra, x, y, z, parent, i, c, d, -1.0, 361.0, chord2)
                else:
                    lo_ra = ra[i] - dra
                    hi_ra = ra[i] + dra
                    _scan(ra, x, y, z, parent, i, c, d, lo_ra, hi_ra, chord2)
                    if lo_ra < 0.0:
                        _scan(ra, x, y, z, parent, i, c, d, lo_ra + 360.0, 361.0, chord2)
                    if hi_ra >= 360.0:
                        _scan(ra, x, y, z, parent, i, c, d, -1.0, hi_ra - 360.0, chord2)
    for i in range(n):
        parent[i] = _find(parent, i)
    return parent


@njit
def _match_one(a, b, frame, x, y, z, w, chord2, local_obj):
    """Incremental frame-by-frame matching of rows ``[a, b)`` (one component, frame order).

    Writes 0-based local object numbers into ``local_obj[a:b]``; returns the object count.
    """
    k = b - a
    sx = np.zeros(k)
    sy = np.zeros(k)
    sz = np.zeros(k)
    mx = np.zeros(k)
    my = np.zeros(k)
    mz = np.zeros(k)
    nobj = 0
    i = a
    while i < b:
        e = i + 1
        while e < b and frame[e] == frame[i]:
            e += 1
        m = e - i
        if nobj > 0:
            # mean directions of the current objects
            for o in range(nobj):
                norm = math.sqrt(sx[o] * sx[o] + sy[o] * sy[o] + sz[o] * sz[o])
                mx[o] = sx[o] / norm
                my[o] = sy[o] / norm
                mz[o] = sz[o] / norm
            npair = 0
            dist = np.empty(m * nobj)
            ps = np.empty(m * nobj, dtype=np.int64)
            po = np.empty(m * nobj, dtype=np.int64)
            for s in range(m):
                r = i + s
                for o in range(nobj):
                    dx = x[r] - mx[o]
                    dy = y[r] - my[o]
                    dz = z[r] - mz[o]
                    d2 = dx * dx + dy * dy + dz * dz
                    if d2 <= chord2:
                        dist[npair] = d2
                        ps[npair] = s
                        po[npair] = o
                        npair += 1
            for s in range(m):
                local_obj[i + s] = -1
            if npair > 0:
                order = np.argsort(dist[:npair], kind="mergesort")
                used = np.zeros(nobj, dtype=np.bool_)
                for t in range(npair):
                    p = order[t]
                    s = ps[p]
                    o = po[p]
                    if local_obj[i + s] < 0 and not used[o]:
                        local_obj[i + s] = o
                        used[o] = True
            for s in range(m):
                if local_obj[i + s] < 0:
                    local_obj[i + s] = nobj
                    nobj += 1
        else:
            for s in range(m):
                local_obj[i + s] = s
            nobj = m
        # update object sums after the whole frame
        for s in range(m):
            r = i + s
            o = local_obj[r]
            sx[o] += w[r] * x[r]
            sy[o] += w[r] * y[r]
            sz[o] += w[r] * z[r]
        i = e
    return nobj


@njit(parallel=True)
def match_components(comp_start, frame, x, y, z, w, radius_deg):
    """Objects within each friends-of-friends component.

    Rows are sorted by (component, frame, sourceId); ``comp_start`` holds each component's
    first row plus the total; ``frame`` is the ccdVisitId, ``w`` the positional weight
    (1/sigma^2, > 0). Returns ``(local_obj, nobj)``: each row's 0-based object number within
    its component and each component's object count (both int64).
    """
    n = x.size
    ncomp = comp_start.size - 1
    half = 0.5 * math.radians(radius_deg)
    chord2 = 4.0 * math.sin(half) * math.sin(half)
    local_obj = np.zeros(n, dtype=np.int64)
    nobj = np.zeros(ncomp, dtype=np.int64)
    for c in prange(ncomp):
        a = comp_start[c]
        b = comp_start[c + 1]
        if b - a == 1:
            local_obj[a] = 0
            nobj[c] = 1
        else:
            nobj[c] = _match_one(a, b, frame, x, y, z, w, chord2, local_obj)
    return local_obj, nobj


@njit
def nearest_within(zone_ids, zone_start, ra, x, y, z, qra, qx, qy, qz, qzone, height_deg, radius_deg):
    """Nearest catalog row within ``radius_deg`` of each query position (-1 if none).

    The catalog (``ra``, unit vectors) is sorted by (zone, ra) as in :func:`link_zones`;
    queries are given by RA [deg], unit vectors and zone number. Ties go to the lower row.
    Returns ``(index, chord2)`` arrays (int64, float64).
    """
    nq = qra.size
    half = 0.5 * math.radians(radius_deg)
    chord2 = 4.0 * math.sin(half) * math.sin(half)
    best = np.full(nq, -1, dtype=np.int64)
    bestd = np.full(nq, np.inf)
    nz = zone_ids.size
    for q in range(nq):
        zq = qzone[q]
        for dz_ in range(-1, 2):
            zt = zq + dz_
            k = _lower_bound(zone_ids, 0, nz, zt)
            if k >= nz or zone_ids[k] != zt:
                continue
            a = zone_start[k]
            b = zone_start[k + 1]
            dec_lo = (min(zq, zt)) * height_deg - 90.0
            dec_hi = (max(zq, zt) + 1) * height_deg - 90.0
            dra = ra_halfwidth(max(abs(dec_lo), abs(dec_hi)), radius_deg)
            if dra >= 180.0:
                lo1, hi1, lo2, hi2 = -1.0, 361.0, 1.0, 0.0
            else:
                lo1 = qra[q] - dra
                hi1 = qra[q] + dra
                lo2, hi2 = 1.0, 0.0
                if lo1 < 0.0:
                    lo2, hi2 = lo1 + 360.0, 361.0
                elif hi1 >= 360.0:
                    lo2, hi2 = -1.0, hi1 - 360.0
            for part in range(2):
                lo = lo1 if part == 0 else lo2
                hi = hi1 if part == 0 else hi2
                if hi < lo:
                    continue
                j = _lower_bound(ra, a, b, lo)
                while j < b and ra[j] <= hi:
                    ddx = x[j] - qx[q]
                    ddy = y[j] - qy[q]
                    ddz = z[j] - qz[q]
                    d2 = ddx * ddx + ddy * ddy + ddz * ddz
                    if d2 <= chord2 and (d2 < bestd[q] or (d2 == bestd[q] and j < best[q])):
                        bestd[q] = d2
                        best[q] = j
                    j += 1
    return best, bestd
