"""Sky regions (Cone, Box, Polygon): validated values, exact membership and HEALPix coverage.

Every angle is in degrees. A region answers two questions:

* ``contains(ra, dec)`` -> bool array: the exact test (``minidr.sky.kernels``);
* ``ranges29()`` -> (lo, hi) int64 arrays: half-open ranges of order-29 nested HEALPix
  indices that together cover the region. This is the coarse phase of a spatial query and
  it is a superset, never a subset: the coverage comes from cdshealpix at an order fine
  enough for the region and is then dilated by one ring of neighbouring cells, so rounding
  on the region's edge can only add cells.

No DuckDB and no files here.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import astropy.units as u
import numpy as np
from astropy.coordinates import Latitude, Longitude
from cdshealpix import nested

from ..errors import InputError
from . import kernels as K
from .healpix import ORDER_MAX

try:  # the compiled function behind cdshealpix.nested.cone_search (depth, delta, lon, lat, radius [rad], flat)
    from cdshealpix.cdshealpix import cone_search as _cone_search_rad
except ImportError:  # pragma: no cover
    _cone_search_rad = None

# Mean HEALPix pixel size at order 0 [deg] (sqrt(4 pi / 12) rad).
_PIX0_DEG = math.degrees(math.sqrt(4.0 * math.pi / 12.0))


class RegionMessage(str, enum.Enum):
    """The messages of region validation (one place, so tests and docs can name them)."""

    NOT_FINITE = "{field} must be a finite number, got {value!r}"
    DEC_RANGE = "{field} must be within [-90, 90] degrees, got {value!r}"
    RADIUS_RANGE = "cone radius must be > 0 and <= 180 degrees, got {value!r}"
    DEC_ORDER = "box dec_min ({lo!r}) must not exceed dec_max ({hi!r})"
    POLY_ODD = "polygon needs pairs of numbers (ra1, dec1, ra2, dec2, ...), got {n} numbers"
    POLY_FEW = "polygon needs at least 3 vertices, got {n}"
    POLY_HEMISPHERE = "polygon must fit within a hemisphere (vertices too far apart)"


def _num(value, field: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(RegionMessage.NOT_FINITE.format(field=field, value=value)) from None
    if not math.isfinite(x):
        raise InputError(RegionMessage.NOT_FINITE.format(field=field, value=value))
    return x


def _dec(value, field: str) -> float:
    x = _num(value, field)
    if not -90.0 <= x <= 90.0:
        raise InputError(RegionMessage.DEC_RANGE.format(field=field, value=value))
    return x


def _arr(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float64).ravel())


# -- thin wrappers over the kernels -------------------------------------------------------------


def ang_sep(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Angular separation [deg] of positions [deg]; numpy broadcasting applies."""
    b = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (ra1, dec1, ra2, dec2)))
    shape = b[0].shape
    out = K.ang_sep(*(_arr(x) for x in b))
    return out.reshape(shape)


def radec_to_xyz(ra, dec) -> np.ndarray:
    """Unit vectors (n, 3) of positions [deg]."""
    return K.radec_to_xyz(_arr(ra), _arr(dec))


def xyz_to_radec(xyz) -> tuple[np.ndarray, np.ndarray]:
    """(RA in [0, 360), Dec) [deg] of vectors (n, 3)."""
    return K.xyz_to_radec(np.ascontiguousarray(np.asarray(xyz, dtype=np.float64).reshape(-1, 3)))


# -- coverage helpers --------------------------------------------------------------------------


def _order_for(size_deg: float, cells_across: float = 8.0, max_order: int = 18) -> int:
    """An order whose pixels are about ``size_deg / cells_across`` wide (0..max_order)."""
    if size_deg <= 0:
        return max_order
    k = math.log2(_PIX0_DEG * cells_across / size_deg)
    return int(min(max_order, max(0, math.floor(k))))


def cells_to_ranges29(ipix, depth) -> tuple[np.ndarray, np.ndarray]:
    """Merged, sorted half-open order-29 ranges of cells given at (possibly mixed) depths."""
    ipix = np.asarray(ipix, dtype=np.int64)
    depth = np.asarray(depth, dtype=np.int64)
    if ipix.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    shift = 2 * (ORDER_MAX - depth)
    lo = ipix << shift
    hi = (ipix + 1) << shift
    return merge_ranges(lo, hi)


def merge_ranges(lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """Sort half-open ranges and merge those that touch or overlap."""
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    if lo.size == 0:
        return lo, hi
    o = np.argsort(lo, kind="stable")
    lo, hi = lo[o], hi[o]
    run_hi = np.maximum.accumulate(hi)
    start = np.ones(lo.size, dtype=bool)
    start[1:] = lo[1:] > run_hi[:-1]
    idx = np.flatnonzero(start)
    ends = np.append(idx[1:], lo.size) - 1
    return lo[idx], run_hi[ends]


def coarsen_ranges(lo, hi, max_ranges: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_ranges`` ranges covering the given ones (closing the smallest gaps)."""
    lo, hi = merge_ranges(lo, hi)
    if lo.size <= max_ranges:
        return lo, hi
    gaps = lo[1:] - hi[:-1]
    keep = np.sort(np.argsort(gaps, kind="stable")[lo.size - max_ranges:])  # largest gaps stay open
    starts = np.concatenate([[0], keep + 1])
    ends = np.concatenate([keep, [lo.size - 1]])
    return lo[starts], hi[ends]


def dilate(ipix, order: int) -> np.ndarray:
    """The cells at ``order`` plus all their neighbours (unique, sorted)."""
    ipix = np.unique(np.asarray(ipix, dtype=np.int64))
    if ipix.size == 0:
        return ipix
    nt = 1 if ipix.size < 100_000 else 0  # a thread pool costs more than small inputs
    nb = np.asarray(nested.neighbours(ipix.astype(np.uint64), order, num_threads=nt), dtype=np.int64)
    allp = np.concatenate([ipix, nb.ravel()])
    return np.unique(allp[allp >= 0])


def _flat_cells(ipix, depth, order: int) -> np.ndarray:
    """Cells of a MOC (ipix at depth <= order) expressed at ``order``."""
    ipix = np.asarray(ipix, dtype=np.int64)
    depth = np.asarray(depth, dtype=np.int64)
    out = []
    for d in np.unique(depth):
        p = ipix[depth == d]
        k = 4 ** (order - int(d))
        out.append((p[:, None] * k + np.arange(k, dtype=np.int64)[None, :]).ravel())
    return np.unique(np.concatenate(out)) if out else np.zeros(0, np.int64)


class Region:
    """Base of Cone, Box and Polygon."""

    def contains(self, ra, dec) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def cells(self, order: int) -> np.ndarray:  # pragma: no cover - abstract
        """Flat cells at ``order`` whose union covers the region (before dilation)."""
        raise NotImplementedError

    def size_deg(self) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def coverage_order(self) -> int:
        return _order_for(self.size_deg())

    def coverage(self, order: int | None = None) -> tuple[int, np.ndarray]:
        """(order, cells): flat cells at ``order`` covering the region, dilated by one ring."""
        if order is None:
            order = self.coverage_order()
        cells = self.cells(order)
        return order, dilate(cells, order)

    def ranges29(self, order: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Half-open [lo, hi) order-29 ranges covering the region (a superset)."""
        order, cells = self.coverage(order)
        return cells_to_ranges29(cells, np.full(cells.size, order))


@dataclass(frozen=True)
class Cone(Region):
    """All positions within ``radius`` [deg] of (ra, dec) [deg]."""

    ra: float
    dec: float
    radius: float

    def __post_init__(self):
        object.__setattr__(self, "ra", _num(self.ra, "cone ra") % 360.0)
        object.__setattr__(self, "dec", _dec(self.dec, "cone dec"))
        r = _num(self.radius, "cone radius")
        if not 0.0 < r <= 180.0:
            raise InputError(RegionMessage.RADIUS_RANGE.format(value=self.radius))
        object.__setattr__(self, "radius", r)

    def contains(self, ra, dec) -> np.ndarray:
        return K.cone_mask(_arr(ra), _arr(dec), self.ra, self.dec, self.radius)

    def size_deg(self) -> float:
        return 2.0 * self.radius

    def coverage(self, order: int | None = None) -> tuple[int, np.ndarray]:
        """Cells of the cone widened by one cell size (the same margin as the one-ring
        dilation of other regions, without a neighbour look-up)."""
        if order is None:
            order = self.coverage_order()
        margin = 2.0 * _PIX0_DEG / 2**order
        wide = Cone(self.ra, self.dec, min(180.0, self.radius + margin))
        return order, wide.cells(order)

    def cells(self, order: int) -> np.ndarray:
        if self.radius >= 90.0:
            return _all_cells(order)
        if _cone_search_rad is not None:
            # cdshealpix's binding itself: the same cells without ~0.5 ms of astropy
            # Longitude/Latitude/Quantity construction (this runs once per cone query)
            ipix, _, _ = _cone_search_rad(np.uint8(order), np.uint8(2), np.float64(math.radians(self.ra)),
                                          np.float64(math.radians(self.dec)), np.float64(math.radians(self.radius)), True)
        else:  # pragma: no cover - another cdshealpix layout
            ipix, _, _ = nested.cone_search(
                Longitude(self.ra * u.deg), Latitude(self.dec * u.deg), self.radius * u.deg, order, flat=True
            )
        return np.asarray(ipix, dtype=np.int64)


@dataclass(frozen=True)
class Box(Region):
    """RA in [ra_min, ra_max] (crossing RA = 0 when ra_min > ra_max), Dec in [dec_min, dec_max]."""

    ra_min: float
    dec_min: float
    ra_max: float
    dec_max: float

    def __post_init__(self):
        rmin = _num(self.ra_min, "box ra_min")
        rmax = _num(self.ra_max, "box ra_max")
        dmin = _dec(self.dec_min, "box dec_min")
        dmax = _dec(self.dec_max, "box dec_max")
        if dmin > dmax:
            raise InputError(RegionMessage.DEC_ORDER.format(lo=self.dec_min, hi=self.dec_max))
        object.__setattr__(self, "ra_min", rmin)
        object.__setattr__(self, "ra_max", rmax)
        object.__setattr__(self, "dec_min", dmin)
        object.__setattr__(self, "dec_max", dmax)

    @property
    def full_ra(self) -> bool:
        return (self.ra_max - self.ra_min) >= 360.0

    def ra_span(self) -> float:
        if self.full_ra:
            return 360.0
        lo, hi = self.ra_min % 360.0, self.ra_max % 360.0
        return hi - lo if lo <= hi else hi + 360.0 - lo

    def contains(self, ra, dec) -> np.ndarray:
        return K.box_mask(_arr(ra), _arr(dec), self.ra_min, self.dec_min, self.ra_max, self.dec_max)

    def size_deg(self) -> float:
        dec_span = self.dec_max - self.dec_min
        cosd = max(math.cos(math.radians(self.dec_min)), math.cos(math.radians(self.dec_max)))
        return max(dec_span, self.ra_span() * cosd, 1e-7)

    def cells(self, order: int) -> np.ndarray:
        # cdshealpix zone_search wraps by itself when lon_min > lon_max, but misses cells
        # when lon_min is exactly 0: nudge the bounds outwards by a hair (the coverage only grows).
        eps = 1e-9
        if self.full_ra or self.ra_span() >= 360.0 - 1e-6:
            a, b = 180.0, 180.0 - eps
        else:
            a = (self.ra_min % 360.0) - eps
            b = (self.ra_max % 360.0) + eps
            a = a + 360.0 if a < 0 else a
            b = b - 360.0 if b >= 360.0 else b
            if a == 0.0:
                a = 360.0 - eps
        dmin = max(-90.0, self.dec_min - eps)
        dmax = min(90.0, self.dec_max + eps)
        if dmax <= dmin:
            dmax = min(90.0, dmin + eps)
            dmin = dmax - eps
        ipix, depth, _ = nested.zone_search(
            Longitude(a * u.deg), Latitude(dmin * u.deg), Longitude(b * u.deg), Latitude(dmax * u.deg), order,
            flat=True,
        )
        return np.unique(np.asarray(ipix, dtype=np.int64))


@dataclass(frozen=True)
class Polygon(Region):
    """A spherical polygon: vertices joined by great-circle arcs, concave allowed.

    ``vertices`` is a flat tuple ``(ra1, dec1, ra2, dec2, ...)`` [deg]; the polygon must fit
    in a hemisphere. Inside is the side that does not contain the antipode of the vertices'
    mean direction.
    """

    vertices: tuple

    def __post_init__(self):
        vals = list(self.vertices)
        if len(vals) % 2:
            raise InputError(RegionMessage.POLY_ODD.format(n=len(vals)))
        if len(vals) < 6:
            raise InputError(RegionMessage.POLY_FEW.format(n=len(vals) // 2))
        out = []
        for k in range(0, len(vals), 2):
            out.append(_num(vals[k], f"polygon vertex {k // 2 + 1} ra"))
            out.append(_dec(vals[k + 1], f"polygon vertex {k // 2 + 1} dec"))
        object.__setattr__(self, "vertices", tuple(out))
        _, _, _, _, _, ok = K.polygon_frame(self.vra, self.vdec)
        if not ok:
            raise InputError(RegionMessage.POLY_HEMISPHERE.value)

    @property
    def vra(self) -> np.ndarray:
        return np.asarray(self.vertices[0::2], dtype=np.float64)

    @property
    def vdec(self) -> np.ndarray:
        return np.asarray(self.vertices[1::2], dtype=np.float64)

    def contains(self, ra, dec) -> np.ndarray:
        mask, _ = K.polygon_mask(_arr(ra), _arr(dec), self.vra, self.vdec)
        return mask

    def _enclosing_cone(self) -> tuple[float, float, float]:
        c, _, _, _, _, _ = K.polygon_frame(self.vra, self.vdec)
        ra0, dec0 = K.xyz_to_radec(c.reshape(1, 3))
        r = float(np.max(ang_sep(ra0[0], dec0[0], self.vra, self.vdec)))
        return float(ra0[0]), float(dec0[0]), r

    def size_deg(self) -> float:
        return 2.0 * self._enclosing_cone()[2]

    def cells(self, order: int) -> np.ndarray:
        # cdshealpix's polygon coverage plus the cells of the vertices themselves; the
        # one-ring dilation in coverage() covers edge rounding.
        try:
            ipix, depth, _ = nested.polygon_search(
                Longitude(self.vra * u.deg), Latitude(self.vdec * u.deg), order, flat=True
            )
            cells = np.asarray(ipix, dtype=np.int64)
        except Exception:  # noqa: BLE001 - degenerate polygon: fall back to the enclosing cone
            ra0, dec0, r = self._enclosing_cone()
            return Cone(ra0, dec0, min(180.0, r * 1.0001 + 1e-9)).cells(order)
        vcells = np.asarray(
            nested.lonlat_to_healpix(Longitude(self.vra * u.deg), Latitude(self.vdec * u.deg), order), dtype=np.int64
        )
        return np.unique(np.concatenate([cells, vcells]))


def _all_cells(order: int) -> np.ndarray:
    return np.arange(12 * 4**order, dtype=np.int64)
