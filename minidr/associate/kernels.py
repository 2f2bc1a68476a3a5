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
    return math.degrees(math.asin(s)) * (1.0 + 1e-9) + 1e-9


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
        if m == 1:
            # one source of this frame: nearest object within the radius (ties: lower object)
            best = -1
            bestd = chord2
            for o in range(nobj):
                dx = x[i] - mx[o]
                dy = y[i] - my[o]
                dz = z[i] - mz[o]
                d2 = dx * dx + dy * dy + dz * dz
                if d2 < bestd or (d2 == bestd and best < 0):
                    bestd = d2
                    best = o
            if best < 0:
                best = nobj
                nobj += 1
            local_obj[i] = best
        else:
            # count the close (source, object) pairs first: memory O(pairs), not O(m * nobj)
            npair = 0
            for s in range(m):
                r = i + s
                local_obj[r] = -1
                for o in range(nobj):
                    dx = x[r] - mx[o]
                    dy = y[r] - my[o]
                    dz = z[r] - mz[o]
                    if dx * dx + dy * dy + dz * dz <= chord2:
                        npair += 1
            dist = np.empty(npair)
            ps = np.empty(npair, dtype=np.int64)
            po = np.empty(npair, dtype=np.int64)
            npair = 0
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
        # update the matched/new objects after the whole frame
        for r in range(i, e):
            o = local_obj[r]
            sx[o] += w[r] * x[r]
            sy[o] += w[r] * y[r]
            sz[o] += w[r] * z[r]
        for r in range(i, e):
            o = local_obj[r]
            norm = math.sqrt(sx[o] * sx[o] + sy[o] * sy[o] + sz[o] * sz[o])
            mx[o] = sx[o] / norm
            my[o] = sy[o] / norm
            mz[o] = sz[o] / norm
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


@njit(parallel=True)
def nearest_within(zone_ids, zone_start, ra, x, y, z, qra, qdec, height_deg, radius_deg):
    """Nearest catalog row within ``radius_deg`` of each query position (-1 if none).

    The catalog (``ra`` [deg], unit vectors) is sorted by (zone, ra) as in :func:`link_zones`;
    queries are RA, Dec [deg]. Ties go to the lower row. Queries run in parallel.
    Returns ``(index, chord2)`` arrays (int64, float64; chord2 is inf when no match).
    """
    nq = qra.size
    half = 0.5 * math.radians(radius_deg)
    chord2 = 4.0 * math.sin(half) * math.sin(half)
    best = np.full(nq, -1, dtype=np.int64)
    bestd = np.full(nq, np.inf)
    nz = zone_ids.size
    if nz == 0:
        return best, bestd
    zmin = zone_ids[0]
    span = zone_ids[nz - 1] - zmin + 1
    lut = np.full(span, -1, dtype=np.int64)
    for k in range(nz):
        lut[zone_ids[k] - zmin] = k
    # RA half-width for zone pairs (z, z + 1), z from zmin - 2: conservative for (z, z) too
    dra_pair = np.empty(span + 3)
    for t in range(span + 3):
        zz = zmin - 2 + t
        dra_pair[t] = ra_halfwidth(max(abs(zz * height_deg - 90.0), abs((zz + 2) * height_deg - 90.0)),
                                   radius_deg)
    for q in prange(nq):
        rq = qra[q] % 360.0
        if rq >= 360.0:
            rq = 0.0
        dq = min(max(qdec[q], -90.0), 90.0)
        cd = math.cos(math.radians(dq))
        qx = cd * math.cos(math.radians(qra[q]))
        qy = cd * math.sin(math.radians(qra[q]))
        qz = math.sin(math.radians(dq))
        zq = np.int64(math.floor((dq + 90.0) / height_deg))
        bq = -1
        bd = np.inf
        for zt in range(zq - 1, zq + 2):
            if zt < zmin or zt - zmin >= span:
                continue
            k = lut[zt - zmin]
            if k < 0:
                continue
            a = zone_start[k]
            b = zone_start[k + 1]
            dra = dra_pair[min(zq, zt) - zmin + 2]
            for part in range(3):
                if dra >= 180.0:
                    if part > 0:
                        break
                    lo, hi = -1.0, 361.0
                elif part == 0:
                    lo, hi = rq - dra, rq + dra
                elif part == 1:
                    if rq - dra >= 0.0:
                        continue
                    lo, hi = rq - dra + 360.0, 361.0
                else:
                    if rq + dra < 360.0:
                        continue
                    lo, hi = -1.0, rq + dra - 360.0
                j = _lower_bound(ra, a, b, lo)
                while j < b and ra[j] <= hi:
                    ddx = x[j] - qx
                    ddy = y[j] - qy
                    ddz = z[j] - qz
                    d2 = ddx * ddx + ddy * ddy + ddz * ddz
                    if d2 <= chord2 and (d2 < bd or (d2 == bd and j < bq)):
                        bd = d2
                        bq = j
                    j += 1
        best[q] = bq
        bestd[q] = bd
    return best, bestd
