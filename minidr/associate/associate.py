"""Association of Sources into Objects, stable objectIds and per-band Object statistics.

Method (docs/association.md):

1. rows are put in a canonical order (by ``sourceId``), so nothing depends on input order;
2. friends-of-friends components with linking length ``radius`` (zones sweep, numba);
3. inside each component, frames in (visit, detector) order (= ccdVisitId order) are matched
   one-to-one to the component's objects, greedy by distance to their weighted mean
   positions within ``radius``; unmatched sources start new objects. Two sources of one
   ccdVisitId are never in one Object;
4. objectId = 1 + rank of the objects sorted by (``_healpix_29`` of their mean position,
   smallest sourceId): content-derived, independent of processing order and of ``--jobs``;
5. per-object and per-band statistics (numpy, in canonical order so byte-stable).

The association is global over all sources in memory, so it is exact across HEALPix
partition boundaries by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from minidr.config import AssociationConfig
from minidr.errors import InputError
from minidr.products import BAD_FOR_AGGREGATES
from minidr.sky.healpix import healpix29
from minidr.units import AB_ZP_NJY

from . import kernels

REQUIRED_COLUMNS = (
    "sourceId", "ccdVisitId", "band", "midpointMjdTai", "ra", "dec", "raErr", "decErr",
    "psfFlux", "psfFluxErr", "flags", "extendedness", "snr",
)

OBJECT_COLUMNS = (
    "objectId", "coord_ra", "coord_dec", "coord_raErr", "coord_decErr", "nDetections",
    "refExtendedness", "firstMjd", "lastMjd",
)
BAND_COLUMNS = ("psfFluxMean", "psfFluxMeanErr", "psfFluxSigma", "psfFluxChi2", "psfFluxNdata", "psfMag")

DEFAULT_POS_ERR_DEG = 0.1 / 3600.0
"""Positional error assumed for a source whose raErr/decErr is missing or not > 0 (0.1 arcsec)."""


@dataclass
class AssociationResult:
    """Output of :func:`associate`.

    ``object_ids``: int64 objectId of each input row (same order as the input table);
    ``objects``: the Object table (one row per object, sorted by objectId).
    """

    object_ids: np.ndarray
    objects: pa.Table

    @property
    def n_objects(self) -> int:
        return self.objects.num_rows


def object_schema(bands) -> pa.Schema:
    """Arrow schema of the Object table for these bands (units in field metadata)."""
    def fld(name, typ, unit, doc):
        return pa.field(name, typ, metadata={"unit": unit, "description": doc})

    fields = [
        fld("objectId", pa.int64(), "", "unique object id (1 + rank by HEALPix position)"),
        fld("coord_ra", pa.float64(), "deg", "weighted mean RA of the object's sources (ICRS)"),
        fld("coord_dec", pa.float64(), "deg", "weighted mean Dec of the object's sources (ICRS)"),
        fld("coord_raErr", pa.float64(), "deg", "error of coord_ra (on sky, includes cos dec)"),
        fld("coord_decErr", pa.float64(), "deg", "error of coord_dec"),
        fld("nDetections", pa.int64(), "", "number of Sources associated with the object"),
        fld("refExtendedness", pa.float64(), "", "S/N-weighted mean extendedness (0 point, 1 extended)"),
        fld("firstMjd", pa.float64(), "d", "earliest midpointMjdTai of the object's sources (TAI)"),
        fld("lastMjd", pa.float64(), "d", "latest midpointMjdTai of the object's sources (TAI)"),
    ]
    for b in bands:
        fields += [
            fld(f"{b}_psfFluxMean", pa.float64(), "nJy", f"inverse-variance weighted mean {b} PSF flux of good sources"),
            fld(f"{b}_psfFluxMeanErr", pa.float64(), "nJy", f"error of {b}_psfFluxMean"),
            fld(f"{b}_psfFluxSigma", pa.float64(), "nJy", f"standard deviation (ddof=1) of good {b} PSF fluxes"),
            fld(f"{b}_psfFluxChi2", pa.float64(), "", f"chi-square of good {b} PSF fluxes about the weighted mean (not reduced)"),
            fld(f"{b}_psfFluxNdata", pa.int64(), "", f"number of good {b} sources"),
            fld(f"{b}_psfMag", pa.float64(), "mag", f"AB magnitude of {b}_psfFluxMean"),
        ]
    return pa.schema(fields)


def _column(table: pa.Table, name: str, dtype) -> np.ndarray:
    col = table.column(name)
    try:
        arr = col.to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, TypeError):
        raise InputError("cannot be read as an array", path="sources", keyword=name) from None
    if dtype is not None:
        if col.null_count and np.issubdtype(np.dtype(dtype), np.integer):
            raise InputError("has null values", path="sources", keyword=name)
        arr = np.asarray(arr, dtype=dtype)
    return arr


def _check(sources: pa.Table, bands, cfg: AssociationConfig):
    if not isinstance(sources, pa.Table):
        raise InputError("associate() needs a pyarrow.Table of Sources")
    missing = [c for c in REQUIRED_COLUMNS if c not in sources.column_names]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}", path="sources")
    if len(set(bands)) != len(bands):
        raise InputError(f"bands {list(bands)} contain duplicates")
    cfg.validate()


def _unit_vectors(ra_deg, dec_deg):
    ra = np.radians(ra_deg)
    dec = np.radians(dec_deg)
    cd = np.cos(dec)
    return cd * np.cos(ra), cd * np.sin(ra), np.sin(dec)


RA_BITS = 43
"""RA is quantised to 360 / 2**43 deg (1.5e-7 arcsec) in the zone sort key."""


def _zones(ra_deg, dec_deg, height_deg):
    """Zone number of each position and RA reduced to [0, 360)."""
    ra = np.mod(ra_deg, 360.0)
    ra[ra >= 360.0] = 0.0
    zone = np.floor((np.clip(dec_deg, -90.0, 90.0) + 90.0) / height_deg).astype(np.int64)
    return ra, zone


def zone_sort(ra_deg, dec_deg, height_deg):
    """Sort order by (zone, ra) and the zone index arrays used by the kernels.

    Returns ``(order, ra_sorted, zone_ids, zone_start)``. The sort key is one int64
    ``zone << 43 | quantised RA`` (stable argsort: ties keep row order); ``ra_sorted`` is the
    quantised RA [deg] (monotone within a zone; the kernels' RA windows carry a margin far
    larger than the 1.5e-7 arcsec quantum).
    """
    ra, zone = _zones(np.asarray(ra_deg, np.float64), np.asarray(dec_deg, np.float64), height_deg)
    scale = float(2 ** RA_BITS) / 360.0
    q = np.minimum((ra * scale).astype(np.int64), 2 ** RA_BITS - 1)
    key = (zone << RA_BITS) | q
    order = np.argsort(key, kind="stable")
    key = key[order]
    zs = key >> RA_BITS
    ras = (key & (2 ** RA_BITS - 1)).astype(np.float64) / scale
    if zs.size:
        starts = np.flatnonzero(np.r_[True, zs[1:] != zs[:-1]])
    else:
        starts = np.zeros(0, dtype=np.int64)
    zone_ids = zs[starts].astype(np.int64)
    zone_start = np.r_[starts, zs.size].astype(np.int64)
    return order, ras, zone_ids, zone_start


def link(ra_deg, dec_deg, radius_arcsec: float) -> np.ndarray:
    """Friends-of-friends component label (smallest member row) of each position.

    Positions in degrees; two positions closer than ``radius_arcsec`` share a label.
    """
    r = radius_arcsec / 3600.0
    order, ras, zone_ids, zone_start = zone_sort(ra_deg, dec_deg, r)
    x, y, z = _unit_vectors(np.asarray(ra_deg, np.float64)[order], np.asarray(dec_deg, np.float64)[order])
    root_sorted = kernels.link_zones(zone_ids, zone_start, ras, x, y, z, r, r)
    # back to input rows; label = smallest input row of the component
    n = order.size
    label_in_sorted = order[root_sorted]  # an input row of the component (its root)
    labels = np.empty(n, dtype=np.int64)
    labels[order] = label_in_sorted
    minrow = np.full(n, n, dtype=np.int64)
    np.minimum.at(minrow, labels, np.arange(n, dtype=np.int64))
    return minrow[labels]


def _sum(index, weights, n):
    """Per-object sums of ``weights`` (float64, also for empty input)."""
    return np.bincount(index, weights=weights, minlength=n).astype(np.float64, copy=False)


def _positional_weight(ra_err, dec_err):
    e2 = 0.5 * (np.square(ra_err) + np.square(dec_err))
    bad = ~(np.isfinite(e2) & (e2 > 0))
    e2[bad] = DEFAULT_POS_ERR_DEG ** 2
    return 1.0 / e2


def associate(sources: pa.Table, bands: list[str], cfg: AssociationConfig) -> AssociationResult:
    """Group Sources into Objects and compute the Object table (see module docstring).

    ``sources``: pyarrow Table with at least :data:`REQUIRED_COLUMNS` (SPEC units: deg, nJy,
    MJD TAI); ``bands``: band order of the per-band Object columns. Returns an
    :class:`AssociationResult` whose ``object_ids`` align with the input rows.
    """
    bands = list(bands)
    _check(sources, bands, cfg)
    n = sources.num_rows
    sid_in = _column(sources, "sourceId", np.int64)
    canon = np.argsort(sid_in, kind="stable")
    sid = sid_in[canon]
    if n > 1 and np.any(sid[1:] == sid[:-1]):
        dup = sid[1:][sid[1:] == sid[:-1]][0]
        raise InputError(f"sourceId {dup} is not unique", path="sources", keyword="sourceId")

    def col(name, dtype=np.float64):
        return _column(sources, name, dtype)[canon]

    ra = col("ra")
    dec = col("dec")
    if n and not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec))):
        raise InputError("ra/dec must be finite for every source", path="sources", keyword="ra/dec")
    frame = col("ccdVisitId", np.int64)
    ra_err = col("raErr")
    dec_err = col("decErr")
    w_pos = _positional_weight(ra_err, dec_err)

    r_deg = cfg.radius / 3600.0
    if n == 0:
        return AssociationResult(np.zeros(0, np.int64), object_schema(bands).empty_table())

    # 1. friends-of-friends components
    order, ras, zone_ids, zone_start = zone_sort(ra, dec, r_deg)
    x, y, z = _unit_vectors(ra, dec)
    root = kernels.link_zones(zone_ids, zone_start, ras, x[order], y[order], z[order], r_deg, r_deg)
    comp = np.empty(n, dtype=np.int64)
    comp[order] = order[root]  # a canonical row of the component, same for all members
    del root, ras, order

    # 2. per component: frames in ccdVisitId order, then sourceId
    _, frame_rank = np.unique(frame, return_inverse=True)
    o2 = np.argsort(comp * (int(frame_rank.max()) + 1) + frame_rank, kind="stable")  # ties: sourceId
    del frame_rank
    cs = comp[o2]
    starts = np.flatnonzero(np.r_[True, cs[1:] != cs[:-1]])
    comp_start = np.r_[starts, n].astype(np.int64)
    local, nobj = kernels.match_components(comp_start, frame[o2], x[o2], y[o2], z[o2], w_pos[o2], r_deg)
    offsets = np.r_[0, np.cumsum(nobj)[:-1]]
    comp_index = np.repeat(np.arange(starts.size), np.diff(comp_start))
    obj_sorted = offsets[comp_index] + local
    obj = np.empty(n, dtype=np.int64)  # provisional object number of each canonical row
    obj[o2] = obj_sorted
    n_obj = int(nobj.sum())
    del o2, cs, local, comp_index, obj_sorted, comp

    # 3. mean positions, then content-derived ids
    mx = _sum(obj, w_pos * x, n_obj)
    my = _sum(obj, w_pos * y, n_obj)
    mz = _sum(obj, w_pos * z, n_obj)
    del x, y, z
    obj_ra = np.degrees(np.arctan2(my, mx)) % 360.0
    obj_ra[obj_ra >= 360.0] = 0.0  # -tiny % 360 rounds to 360
    obj_dec = np.degrees(np.arctan2(mz, np.hypot(mx, my)))
    del mx, my, mz
    min_sid = np.full(n_obj, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(min_sid, obj, sid)
    hp = healpix29(obj_ra, obj_dec)
    rank_order = np.lexsort((min_sid, hp))  # provisional object of each final rank
    rank = np.empty(n_obj, dtype=np.int64)
    rank[rank_order] = np.arange(n_obj, dtype=np.int64)
    obj = rank[obj]  # final 0-based object index per canonical row
    obj_ra = obj_ra[rank_order]
    obj_dec = obj_dec[rank_order]
    object_ids = obj + 1

    objects = _object_table(sources, canon, obj, n_obj, obj_ra, obj_dec, ra_err, dec_err, bands)
    out_ids = np.empty(n, dtype=np.int64)
    out_ids[canon] = object_ids
    return AssociationResult(out_ids, objects)


def _band_codes(column, bands) -> np.ndarray:
    """Index in ``bands`` of each row's band (-1 for other bands or null)."""
    enc = column.combine_chunks().cast(pa.string()).dictionary_encode()
    lut = np.array([bands.index(v) if v in bands else -1 for v in enc.dictionary.to_pylist()] + [-1], np.int64)
    idx = enc.indices.to_numpy(zero_copy_only=False)
    idx = np.where(np.isnan(idx), len(lut) - 1, idx).astype(np.int64) if idx.dtype.kind == "f" else idx.astype(np.int64)
    return lut[idx]


def _object_table(sources, canon, obj, n_obj, obj_ra, obj_dec, ra_err, dec_err, bands) -> pa.Table:
    """Object rows (sorted by objectId = obj + 1) from canonical-order source columns."""
    def col(name, dtype=np.float64):
        return _column(sources, name, dtype)[canon]

    with np.errstate(divide="ignore", invalid="ignore"):
        cols = {}
        cols["objectId"] = np.arange(1, n_obj + 1, dtype=np.int64)
        cols["coord_ra"] = obj_ra
        cols["coord_dec"] = obj_dec
        for name, err in (("coord_raErr", ra_err), ("coord_decErr", dec_err)):
            good = np.isfinite(err) & (err > 0)
            iv = _sum(obj[good], 1.0 / np.square(err[good]), n_obj)
            cols[name] = np.where(iv > 0, 1.0 / np.sqrt(iv), np.nan)
        cols["nDetections"] = np.bincount(obj, minlength=n_obj).astype(np.int64)

        flags = col("flags", np.int64)
        good_flags = (flags & int(BAD_FOR_AGGREGATES)) == 0
        ext = col("extendedness")
        snr = col("snr")
        ok = np.isfinite(ext) & np.isfinite(snr) & (snr > 0)
        okg = ok & good_flags
        num_g = _sum(obj[okg], ext[okg] * snr[okg], n_obj)
        den_g = _sum(obj[okg], snr[okg], n_obj)
        num_a = _sum(obj[ok], ext[ok] * snr[ok], n_obj)
        den_a = _sum(obj[ok], snr[ok], n_obj)
        cols["refExtendedness"] = np.where(den_g > 0, num_g / den_g, np.where(den_a > 0, num_a / den_a, np.nan))

        mjd = col("midpointMjdTai")
        first = np.full(n_obj, np.inf)
        last = np.full(n_obj, -np.inf)
        fin = np.isfinite(mjd)
        np.minimum.at(first, obj[fin], mjd[fin])
        np.maximum.at(last, obj[fin], mjd[fin])
        cols["firstMjd"] = np.where(np.isfinite(first), first, np.nan)
        cols["lastMjd"] = np.where(np.isfinite(last), last, np.nan)

        band = _band_codes(sources.column("band"), bands)[canon]
        flux = col("psfFlux")
        ferr = col("psfFluxErr")
        usable = good_flags & np.isfinite(flux) & np.isfinite(ferr) & (ferr > 0)
        for ib, b in enumerate(bands):
            sel = usable & (band == ib)
            o = obj[sel]
            f = flux[sel]
            wv = 1.0 / np.square(ferr[sel])
            nd = np.bincount(o, minlength=n_obj)
            sw = _sum(o, wv, n_obj)
            mean = _sum(o, wv * f, n_obj) / sw
            mean[nd == 0] = np.nan
            chi2 = _sum(o, wv * np.square(f - mean[o]), n_obj)
            chi2[nd == 0] = np.nan
            umean = _sum(o, f, n_obj) / nd
            ss = _sum(o, np.square(f - umean[o]), n_obj)
            sigma = np.where(nd > 1, np.sqrt(ss / (nd - 1)), np.nan)
            cols[f"{b}_psfFluxMean"] = mean
            cols[f"{b}_psfFluxMeanErr"] = np.where(nd > 0, 1.0 / np.sqrt(sw), np.nan)
            cols[f"{b}_psfFluxSigma"] = sigma
            cols[f"{b}_psfFluxChi2"] = chi2
            cols[f"{b}_psfFluxNdata"] = nd.astype(np.int64)
            cols[f"{b}_psfMag"] = np.where(mean > 0, -2.5 * np.log10(mean) + AB_ZP_NJY, np.nan)
    schema = object_schema(bands)
    return pa.Table.from_arrays([pa.array(cols[f.name], type=f.type) for f in schema], schema=schema)
