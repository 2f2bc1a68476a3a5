"""Select the reference stars that fall on one frame.

The reference catalog (``REPO/refcat/refcat.parquet``) has RA/Dec [deg, ICRS] and one AB
magnitude column per band; the column names come from :class:`minidr.config.RefcatConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minidr.config import RefcatConfig
from minidr.errors import InputError


@dataclass(frozen=True)
class RefStars:
    """Reference stars of one frame: positions [deg, ICRS], AB magnitudes in the frame's band,
    and ``index``, their row numbers in the reference catalog given to :func:`select`."""

    ra: np.ndarray
    dec: np.ndarray
    mag: np.ndarray
    index: np.ndarray

    def __len__(self) -> int:
        return int(self.ra.shape[0])


def _column(ref, name: str) -> np.ndarray:
    """One column of a pyarrow Table, a mapping of arrays or a numpy structured array."""
    try:
        names = ref.column_names  # pyarrow.Table
    except AttributeError:
        names = list(ref.dtype.names) if hasattr(ref, "dtype") and ref.dtype.names else list(ref.keys())
    if name not in names:
        raise InputError(f"no column '{name}' (columns: {', '.join(map(str, names))})",
                         path="reference catalog", keyword=name)
    col = ref[name]
    if hasattr(col, "to_numpy"):
        try:
            col = col.to_numpy(zero_copy_only=False)
        except TypeError:
            col = col.to_numpy()
    arr = np.asarray(col)
    if arr.dtype == object:  # nulls in an Arrow column
        arr = np.array([np.nan if v is None else v for v in arr], dtype=np.float64)
    return arr.astype(np.float64)


def wrap_ra(ra):
    """RA [deg] wrapped into [0, 360) (``np.mod`` alone can return 360.0 for tiny negatives)."""
    r = np.mod(np.asarray(ra, dtype=np.float64), 360.0)
    return np.where(r >= 360.0, r - 360.0, r)


def unit_vectors(ra, dec):
    """Unit vectors (N, 3) of positions in degrees."""
    ra = np.radians(np.asarray(ra, dtype=np.float64))
    dec = np.radians(np.asarray(dec, dtype=np.float64))
    cd = np.cos(dec)
    return np.stack([cd * np.cos(ra), cd * np.sin(ra), np.sin(dec)], axis=-1)


def frame_circle(wcs, shape) -> tuple[float, float, float]:
    """Centre (ra, dec) [deg] and radius [deg] of a circle enclosing a ``shape=(ny, nx)``
    frame under ``wcs`` (from its corners and edge midpoints)."""
    ny, nx = int(shape[0]), int(shape[1])
    xs = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5, (nx - 1) / 2, (nx - 1) / 2, -0.5, nx - 0.5, (nx - 1) / 2])
    ys = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5, -0.5, ny - 0.5, (ny - 1) / 2, (ny - 1) / 2, (ny - 1) / 2])
    ra, dec = wcs.all_pix2world(xs, ys, 0)
    v = unit_vectors(ra, dec)
    c = v[-1]
    cosr = np.clip((v[:-1] * c).sum(axis=1), -1.0, 1.0)
    radius = float(np.degrees(np.arccos(cosr.min())))
    return float(wrap_ra(ra[-1])), float(dec[-1]), radius


def pixel_scale(wcs, shape) -> float:
    """Mean pixel scale [arcsec/px] at the centre of a frame of ``shape=(ny, nx)``."""
    ny, nx = int(shape[0]), int(shape[1])
    cx, cy = (nx - 1) / 2.0, (ny - 1) / 2.0
    ra, dec = wcs.all_pix2world(np.array([cx, cx + 1.0, cx]), np.array([cy, cy, cy + 1.0]), 0)
    v = unit_vectors(ra, dec)
    sx = np.degrees(np.arccos(np.clip((v[0] * v[1]).sum(), -1, 1)))
    sy = np.degrees(np.arccos(np.clip((v[0] * v[2]).sum(), -1, 1)))
    return float(np.sqrt(sx * sy) * 3600.0)


def in_footprint(ra, dec, wcs, shape, margin_arcsec: float) -> np.ndarray:
    """Boolean mask of positions [deg] that land on the ``shape=(ny, nx)`` frame under ``wcs``
    or within ``margin_arcsec`` of its edges."""
    ra = np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    ok = np.isfinite(ra) & np.isfinite(dec)
    if not ok.any():
        return ok
    ra0, dec0, radius = frame_circle(wcs, shape)
    r = np.radians(radius + margin_arcsec / 3600.0)
    cos_lim = np.cos(min(r, np.pi / 4))  # never project points beyond 45 deg through TAN
    v = unit_vectors(ra[ok], dec[ok])
    near = (v * unit_vectors(ra0, dec0)).sum(axis=1) >= cos_lim  # no BLAS: thread-independent
    idx = np.flatnonzero(ok)[near]
    out = np.zeros(ra.shape, dtype=bool)
    if idx.size == 0:
        return out
    x, y = wcs.all_world2pix(ra[idx], dec[idx], 0, quiet=True)
    m = margin_arcsec / pixel_scale(wcs, shape)
    ny, nx = int(shape[0]), int(shape[1])
    inside = (x > -0.5 - m) & (x < nx - 0.5 + m) & (y > -0.5 - m) & (y < ny - 0.5 + m)
    out[idx[inside]] = True
    return out


def select(ref, wcs, shape, band: str, cfg: RefcatConfig, margin_arcsec: float = 60.0) -> RefStars:
    """Reference stars inside the frame's footprint, with a margin for the header WCS error.

    ``ref`` is a pyarrow Table or a mapping of arrays holding the columns named by ``cfg``
    (RA/Dec in degrees, AB magnitudes); ``wcs`` the (header) astropy WCS of the frame,
    ``shape`` its ``(ny, nx)``. Stars with a non-finite magnitude in ``band`` are dropped.
    Raises :class:`InputError` naming a missing column.
    """
    ra = _column(ref, cfg.ra)
    dec = _column(ref, cfg.dec)
    mag = _column(ref, cfg.mag.format(band=band))
    keep = in_footprint(ra, dec, wcs, shape, margin_arcsec) & np.isfinite(mag)
    idx = np.flatnonzero(keep)
    return RefStars(ra=wrap_ra(ra[idx]), dec=dec[idx], mag=mag[idx], index=idx.astype(np.int64))
