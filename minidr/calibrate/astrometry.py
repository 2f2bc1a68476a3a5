"""Astrometric calibration of one frame: match sources to the reference catalog, fit TAN-SIP.

Method (see docs/calibration.md):

1. Reference stars are projected through the header WCS into pixels. For a grid of trial
   rotations within ``+-cfg.max_rotation`` the brightest ``cfg.vote_sources`` sources vote
   with all their pairwise offsets against the ``3 x vote_sources`` brightest reference
   stars in a 2D histogram (cell ``cfg.vote_bin``) that spans ``+-cfg.max_offset``; the
   best (rotation, offset) cell wins (:func:`minidr.calibrate.kernels.vote_offsets`).
2. An affine transform refines it on bright matches, then a linear WCS is fitted.
3. All sources and reference stars are matched one-to-one (nearest first) in the tangent
   plane within a shrinking radius down to ``cfg.match_radius``, and a TAN-SIP WCS of
   degree ``cfg.sip_degree`` is fitted by weighted linear least squares with
   ``cfg.clip_sigma`` clipping of outliers.

Pixel coordinates are 0-based with pixel centres at integers; positions in degrees;
residuals, offsets and RMS in arcsec.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS, Sip

from minidr.config import AstrometryConfig
from minidr.errors import AlgorithmError
from minidr.units import ARCSEC_PER_DEG

from . import kernels
from .refcat import in_footprint, pixel_scale, unit_vectors, wrap_ra


@dataclass(frozen=True)
class AstrometryResult:
    """The fitted WCS of one frame and how well it fits.

    ``wcs``: astropy WCS, TAN-SIP of degree ``sip_degree`` (pure TAN when 0);
    ``rms`` [arcsec]: root-mean-square distance of the final matches under ``wcs``;
    ``n_matches``; ``src_index``/``ref_index``: the final one-to-one matches (indices into
    the source and reference arrays given to :func:`fit_wcs`); ``offset`` [arcsec] and
    ``rotation`` [deg]: the fitted WCS relative to the header WCS at the frame centre
    (rotation is the change of position angle of the +y pixel axis, east of north);
    ``votes``: score of the winning offset/rotation cell; ``residuals`` [arcsec]: distance
    of each final match under ``wcs`` (same order as ``src_index``).
    """

    wcs: WCS
    rms: float
    n_matches: int
    src_index: np.ndarray
    ref_index: np.ndarray
    offset: float
    rotation: float
    sip_degree: int = 0
    votes: int = 0
    residuals: np.ndarray | None = None


# ---------------------------------------------------------------- sky <-> tangent plane


def tan_project(ra, dec, ra0: float, dec0: float):
    """Gnomonic projection of ``(ra, dec)`` [deg] about ``(ra0, dec0)``: standard
    coordinates ``(xi, eta)`` [deg] (xi towards East), as FITS TAN intermediate coordinates."""
    a = np.radians(np.asarray(ra, dtype=np.float64) - ra0)
    d = np.radians(np.asarray(dec, dtype=np.float64))
    d0 = math.radians(dec0)
    cosc = math.sin(d0) * np.sin(d) + math.cos(d0) * np.cos(d) * np.cos(a)
    xi = np.cos(d) * np.sin(a) / cosc
    eta = (math.cos(d0) * np.sin(d) - math.sin(d0) * np.cos(d) * np.cos(a)) / cosc
    return np.degrees(xi), np.degrees(eta)


def tan_deproject(xi, eta, ra0: float, dec0: float):
    """Inverse of :func:`tan_project`: standard coordinates [deg] to ``(ra, dec)`` [deg]."""
    x = np.radians(np.asarray(xi, dtype=np.float64))
    y = np.radians(np.asarray(eta, dtype=np.float64))
    d0 = math.radians(dec0)
    den = math.cos(d0) - y * math.sin(d0)
    ra = np.degrees(np.arctan2(x, den)) + ra0
    dec = np.degrees(np.arctan2(math.sin(d0) + y * math.cos(d0), np.hypot(x, den)))
    return wrap_ra(ra), dec


# ---------------------------------------------------------------- public helpers


def pixel_to_sky(wcs, x, y):
    """Sky positions ``(ra, dec)`` [deg, RA in [0, 360)] of 0-based pixel positions."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size == 0:
        return np.zeros(x.shape), np.zeros(x.shape)
    ra, dec = wcs.all_pix2world(x, y, 0)
    return wrap_ra(ra), dec


def radec_errors(wcs, x, y, xerr, yerr, step: float = 0.5):
    """Position errors ``(ra_err, dec_err)`` [deg] from pixel errors ``xerr, yerr`` [px].

    Propagated through the local Jacobian of ``wcs`` (central differences of ``step`` px),
    assuming independent x and y errors. ``ra_err`` is the error along RA on the sky, i.e.
    it includes the cos(dec) factor.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    xerr = np.broadcast_to(np.asarray(xerr, dtype=np.float64), x.shape)
    yerr = np.broadcast_to(np.asarray(yerr, dtype=np.float64), x.shape)
    if x.size == 0:
        return np.zeros(x.shape), np.zeros(x.shape)
    xs = np.concatenate([x + step, x - step, x, x])
    ys = np.concatenate([y, y, y + step, y - step])
    ra, dec = wcs.all_pix2world(xs, ys, 0)
    n = x.size
    cosd = np.cos(np.radians(dec.reshape(4, n).mean(axis=0)))
    ra = ra.reshape(4, n)
    dec = dec.reshape(4, n)
    dra_dx = (((ra[0] - ra[1] + 180.0) % 360.0) - 180.0) * cosd / (2 * step)
    dra_dy = (((ra[2] - ra[3] + 180.0) % 360.0) - 180.0) * cosd / (2 * step)
    ddec_dx = (dec[0] - dec[1]) / (2 * step)
    ddec_dy = (dec[2] - dec[3]) / (2 * step)
    ra_err = np.hypot(dra_dx * xerr, dra_dy * yerr)
    dec_err = np.hypot(ddec_dx * xerr, ddec_dy * yerr)
    return ra_err, dec_err


# ---------------------------------------------------------------- TAN-SIP least squares


def _solve(a, b):
    """Least-squares solution of ``a @ c = b`` (b may have several columns) through the normal
    equations (the design is well conditioned: monomials of coordinates scaled to [-1, 1]),
    falling back to SVD when they are singular. The products are summed by a kernel, not
    BLAS, so the result does not depend on the number of threads (byte-identical releases)."""
    try:
        ata, atb = kernels.normal_equations(np.ascontiguousarray(a, dtype=np.float64),
                                            np.ascontiguousarray(b, dtype=np.float64))
        return np.linalg.solve(ata, atb)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(a, b, rcond=None)[0]


def _terms(degree: int, min_order: int = 0):
    return [(p, t - p) for t in range(min_order, degree + 1) for p in range(t, -1, -1)]


def _design(u, v, terms):
    return np.stack([u**p * v**q for p, q in terms], axis=1)


def fit_tan_sip(x, y, ra, dec, crpix, crval, degree: int, weights=None, shape=None,
                inverse: bool = True) -> WCS:
    """Weighted least-squares TAN(-SIP) WCS through matched pixel/sky points.

    ``x, y`` are 0-based pixel positions, ``ra, dec`` [deg] their sky positions, ``crpix``
    the 0-based reference pixel (kept fixed), ``crval`` the starting guess of its sky
    position. The standard coordinates are fitted as polynomials of degree ``max(1, degree)``
    in the pixel offsets from ``crpix`` (an exact linear problem); CRVAL is moved until the
    constant terms vanish, the linear terms become CD and the rest the SIP A/B
    coefficients. With ``inverse``, AP/BP coefficients (degree + 1) are fitted on a grid
    over ``shape`` (ny, nx) so that FITS readers without iterative inversion work too.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    deg = max(1, int(degree))
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    sw = np.sqrt(w)
    cx, cy = float(crpix[0]), float(crpix[1])
    s = max(1.0, float(np.max(np.abs(np.concatenate([x - cx, y - cy])))))  # conditioning
    u = (x - cx) / s
    v = (y - cy) / s
    terms = _terms(deg)
    a = _design(u, v, terms) * sw[:, None]
    ra0, dec0 = float(crval[0]), float(crval[1])
    for _ in range(6):
        xi, eta = tan_project(ra, dec, ra0, dec0)
        cxi, ceta = _solve(a, np.stack([xi * sw, eta * sw], axis=1)).T
        ra0, dec0 = (float(t) for t in tan_deproject(cxi[0], ceta[0], ra0, dec0))
        if math.hypot(cxi[0], ceta[0]) < 1e-12:
            break
    scale = np.array([s ** -(p + q) for p, q in terms])
    cxi = cxi * scale
    ceta = ceta * scale
    cd = np.array([[cxi[1], cxi[2]], [ceta[1], ceta[2]]])  # terms (1,0), (0,1)
    wcs = WCS(naxis=2)
    wcs.wcs.crpix = [cx + 1.0, cy + 1.0]
    wcs.wcs.crval = [float(wrap_ra(ra0)), dec0]
    wcs.wcs.cd = cd
    if degree >= 2:
        wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
        cdi = np.linalg.inv(cd)
        amat = np.zeros((deg + 1, deg + 1))
        bmat = np.zeros((deg + 1, deg + 1))
        for k, (p, q) in enumerate(terms):
            if p + q >= 2:
                ab = cdi @ np.array([cxi[k], ceta[k]])
                amat[p, q], bmat[p, q] = ab
        ap, bp = _inverse_sip(amat, bmat, cx, cy, shape, x, y, deg + 1) if inverse else (None, None)
        wcs.sip = Sip(amat, bmat, ap, bp, wcs.wcs.crpix)
    else:
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.cunit = ["deg", "deg"]
    if shape is not None:
        wcs.pixel_shape = (int(shape[1]), int(shape[0]))
    wcs.wcs.set()
    return wcs


def _sip_eval(mat, u, v):
    out = np.zeros_like(u)
    n = mat.shape[0]
    for p in range(n):
        for q in range(n - p):
            if mat[p, q] != 0.0:
                out += mat[p, q] * u**p * v**q
    return out


def add_inverse_sip(wcs, shape) -> WCS:
    """Give a TAN-SIP ``wcs`` inverse AP/BP coefficients (degree A + 1) fitted over the
    ``shape=(ny, nx)`` frame, in place; returns it."""
    sip = wcs.sip
    cx, cy = wcs.wcs.crpix[0] - 1.0, wcs.wcs.crpix[1] - 1.0
    deg = sip.a.shape[0] - 1
    ap, bp = _inverse_sip(sip.a, sip.b, cx, cy, shape, None, None, deg + 1)
    wcs.sip = Sip(sip.a, sip.b, ap, bp, wcs.wcs.crpix)
    wcs.wcs.set()
    return wcs


def _inverse_sip(amat, bmat, cx, cy, shape, x, y, degree):
    """AP/BP of ``degree`` such that u = U + AP(U, V), v = V + BP(U, V) over the frame."""
    if shape is not None:
        ny, nx = int(shape[0]), int(shape[1])
        gx, gy = np.meshgrid(np.linspace(-0.5, nx - 0.5, 25), np.linspace(-0.5, ny - 0.5, 25))
    else:
        gx, gy = np.meshgrid(np.linspace(x.min(), x.max(), 25), np.linspace(y.min(), y.max(), 25))
    u = gx.ravel() - cx
    v = gy.ravel() - cy
    uu = u + _sip_eval(amat, u, v)
    vv = v + _sip_eval(bmat, u, v)
    s = max(1.0, float(np.max(np.abs(np.concatenate([uu, vv])))))
    terms = _terms(degree)
    a = _design(uu / s, vv / s, terms)
    cu, cv = _solve(a, np.stack([u - uu, v - vv], axis=1)).T
    ap = np.zeros((degree + 1, degree + 1))
    bp = np.zeros((degree + 1, degree + 1))
    for k, (p, q) in enumerate(terms):
        ap[p, q] = cu[k] * s ** -(p + q)
        bp[p, q] = cv[k] * s ** -(p + q)
    return ap, bp


# ---------------------------------------------------------------- the fit


def _sep_arcsec(ra1, dec1, ra2, dec2):
    v1 = unit_vectors(ra1, dec1)
    v2 = unit_vectors(ra2, dec2)
    chord = np.linalg.norm(v1 - v2, axis=-1)
    return np.degrees(2.0 * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))) * ARCSEC_PER_DEG


def _position_angle(ra1, dec1, ra2, dec2):
    """Position angle [deg, east of north] of point 2 seen from point 1."""
    a1, d1, a2, d2 = (math.radians(t) for t in (ra1, dec1, ra2, dec2))
    da = a2 - a1
    return math.degrees(math.atan2(math.sin(da) * math.cos(d2),
                                   math.cos(d1) * math.sin(d2) - math.sin(d1) * math.cos(d2) * math.cos(da)))


def _relative_pose(wcs, header_wcs, shape):
    """Offset [arcsec] and rotation [deg] of ``wcs`` relative to ``header_wcs`` at the centre."""
    ny, nx = int(shape[0]), int(shape[1])
    cx, cy = (nx - 1) / 2.0, (ny - 1) / 2.0
    px = np.array([cx, cx])
    py = np.array([cy, cy + 50.0])
    r1, d1 = wcs.all_pix2world(px, py, 0)
    r0, d0 = header_wcs.all_pix2world(px, py, 0)
    offset = float(_sep_arcsec(r1[0], d1[0], r0[0], d0[0]))
    rot = _position_angle(r1[0], d1[0], r1[1], d1[1]) - _position_angle(r0[0], d0[0], r0[1], d0[1])
    return offset, float((rot + 180.0) % 360.0 - 180.0)


def _fail(message: str, n_matches: int = 0, rms: float = float("nan"), **extra):
    raise AlgorithmError(message, n_matches=int(n_matches), rms=float(rms), **extra)


def _affine(px, py, qx, qy):
    """Least-squares affine map (px, py) -> (qx, qy): returns a function."""
    a = np.stack([np.ones_like(px), px, py], axis=1)
    cx, *_ = np.linalg.lstsq(a, qx, rcond=None)
    cy, *_ = np.linalg.lstsq(a, qy, rcond=None)
    return lambda x, y: (cx[0] + cx[1] * x + cx[2] * y, cy[0] + cy[1] * x + cy[2] * y)


def _flux_consistent(flux, mag, tolerance):
    """Matches whose ``mag + 2.5 log10(flux)`` lies within ``tolerance`` mag of the median
    (a faint galaxy on top of an undetected reference star is not a match)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        d = mag + 2.5 * np.log10(flux)
    ok = np.isfinite(d)
    if tolerance <= 0 or ok.sum() < 3:
        return np.ones(flux.size, dtype=bool)
    med = np.median(d[ok])
    return ~ok | (np.abs(d - med) <= tolerance)


def _fit_best_degree(x, y, ra, dec, sig2, keep, crpix, crval, shape, cfg, sip_min):
    """TAN-SIP of ``cfg.sip_degree`` with ``sip_min`` matches or more; with fewer (but at
    least two equations per SIP coefficient) the SIP fit is kept only if it lowers the
    chi-square by more than twice its extra parameters (Akaike); otherwise pure TAN."""
    n = int(keep.sum())
    n_terms = (cfg.sip_degree + 1) * (cfg.sip_degree + 2) // 2
    if cfg.sip_degree >= 2 and n >= sip_min:
        degrees = [cfg.sip_degree]
    elif cfg.sip_degree >= 2 and n >= n_terms + 3:
        degrees = [1, cfg.sip_degree]
    else:
        degrees = [1]
    best = None
    for deg in degrees:
        wcs = fit_tan_sip(x[keep], y[keep], ra[keep], dec[keep], crpix, crval, deg,
                          weights=1.0 / sig2[keep], shape=shape, inverse=False)
        fra, fdec = wcs.all_pix2world(x, y, 0)
        resid = _sep_arcsec(fra, fdec, ra, dec)
        n_par = 2 * ((deg + 1) * (deg + 2) // 2)
        aic = float(np.sum(resid[keep] ** 2 / sig2[keep])) + 2.0 * n_par
        if best is None or aic < best[0]:
            best = (aic, deg, wcs, resid)
    return best[1], best[2], best[3]


def _clipped_fit(x, y, ra, dec, sig2, crpix, crval, shape, cfg, sip_min, iterations, good,
                 with_inverse=True):
    """Fit the ``good`` matches, reject those beyond ``cfg.clip_sigma`` (normalised
    residuals, Rayleigh-scaled robust sigma), refit; returns (degree, wcs, keep mask,
    residuals [arcsec] of all matches)."""
    keep = good.copy() if good.sum() >= cfg.min_matches else np.ones(x.size, dtype=bool)
    good = keep.copy()
    for it in range(iterations + 1):
        degree, wcs, resid = _fit_best_degree(x, y, ra, dec, sig2, keep, crpix, crval, shape, cfg, sip_min)
        if it == iterations:
            break
        z = resid / np.sqrt(sig2)
        sigma = float(np.median(z[keep])) / math.sqrt(2.0 * math.log(2.0))  # Rayleigh median
        new = (z <= cfg.clip_sigma * max(sigma, 1e-12)) & good
        if new.sum() < cfg.min_matches or np.array_equal(new, keep):
            break
        keep = new
    if with_inverse and wcs.sip is not None:
        add_inverse_sip(wcs, shape)
    return degree, wcs, keep, resid


def fit_wcs(x, y, flux, header_wcs, shape, ref_ra, ref_dec, ref_mag, cfg: AstrometryConfig,
            xerr=None, yerr=None) -> AstrometryResult:
    """Match one frame's sources to reference stars and fit its TAN-SIP WCS.

    ``x, y`` [px, 0-based], ``flux`` (any unit, used to rank sources by brightness) and the
    optional centroid errors ``xerr, yerr`` [px] describe the sources; ``header_wcs`` is
    the approximate header WCS of the ``shape=(ny, nx)`` frame; ``ref_ra, ref_dec`` [deg]
    and ``ref_mag`` [AB] the reference stars. Robust to header errors up to
    ``cfg.max_offset`` arcsec and ``cfg.max_rotation`` degrees.

    Raises :class:`AlgorithmError` (with ``n_matches`` and ``rms`` in its metadata) when the
    reference catalog does not overlap the frame, no consistent match is found, fewer than
    ``cfg.min_matches`` stars match, or the RMS exceeds ``cfg.max_rms``.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    flux = np.asarray(flux, dtype=np.float64).ravel()
    ref_ra = np.asarray(ref_ra, dtype=np.float64).ravel()
    ref_dec = np.asarray(ref_dec, dtype=np.float64).ravel()
    ref_mag = np.asarray(ref_mag, dtype=np.float64).ravel()
    if not (x.shape == y.shape == flux.shape):
        raise ValueError("x, y and flux must have the same length")
    if not (ref_ra.shape == ref_dec.shape == ref_mag.shape):
        raise ValueError("ref_ra, ref_dec and ref_mag must have the same length")
    ny, nx = int(shape[0]), int(shape[1])
    cx, cy = (nx - 1) / 2.0, (ny - 1) / 2.0
    scale = pixel_scale(header_wcs, shape)  # arcsec / px
    if xerr is None or yerr is None:
        sig2 = np.full(x.shape, cfg.position_floor**2)
    else:
        xe = np.broadcast_to(np.asarray(xerr, dtype=np.float64), x.shape)
        ye = np.broadcast_to(np.asarray(yerr, dtype=np.float64), x.shape)
        e2 = 0.5 * (xe**2 + ye**2) * scale**2
        sig2 = np.where(np.isfinite(e2), e2, np.nanmax(e2, initial=1.0)) + cfg.position_floor**2
    sig2 = np.maximum(sig2, 1e-8)

    # ---- reference stars that may fall on the frame (header WCS + its possible error)
    r_max = math.hypot(nx, ny) / 2.0
    margin = cfg.max_offset + math.radians(cfg.max_rotation) * r_max * scale + cfg.match_radius
    on = np.flatnonzero(in_footprint(ref_ra, ref_dec, header_wcs, shape, margin))
    src_ok = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    if on.size < cfg.min_matches:
        _fail(f"reference catalog does not overlap the frame: {on.size} reference stars within "
              f"{margin:.0f} arcsec of its header footprint (need {cfg.min_matches})")
    if src_ok.size < cfg.min_matches:
        _fail(f"too few sources to match: {src_ok.size} (need {cfg.min_matches})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rx, ry = header_wcs.all_world2pix(ref_ra[on], ref_dec[on], 0, quiet=True)
    rx = np.asarray(rx, dtype=np.float64)
    ry = np.asarray(ry, dtype=np.float64)

    # ---- 1. vote over rotation and offset (pixels of the header WCS)
    fl = np.where(np.isfinite(flux[src_ok]), flux[src_ok], -np.inf)
    bright = src_ok[np.argsort(-fl, kind="stable")[: cfg.vote_sources]]
    mg = np.where(np.isfinite(ref_mag[on]), ref_mag[on], np.inf)
    rb = np.argsort(mg, kind="stable")[: 3 * cfg.vote_sources]
    bin_px = cfg.vote_bin / scale
    half = cfg.max_offset / scale + bin_px
    step = bin_px / r_max  # rotation [rad] or relative scale moving the corners by one bin
    nrot = int(math.ceil(math.radians(cfg.max_rotation) / step))
    nsc = int(math.floor(cfg.max_scale_error / step + 0.5))
    tt, ss = np.meshgrid(np.arange(-nrot, nrot + 1) * step, 1.0 + np.arange(-nsc, nsc + 1) * step)
    thetas, scales = tt.ravel(), ss.ravel()
    k, dx, dy, votes = kernels.vote_offsets(x[bright], y[bright], rx[rb], ry[rb], cx, cy,
                                            thetas, scales, half, bin_px)
    if votes < cfg.min_votes:
        _fail(f"no consistent offset/rotation between sources and reference stars "
              f"(best vote {votes}, need {cfg.min_votes})", votes=int(votes))
    c, s = math.cos(thetas[k]) * scales[k], math.sin(thetas[k]) * scales[k]
    px = cx + c * (rx - cx) - s * (ry - cy) + dx
    py = cy + s * (rx - cx) + c * (ry - cy) + dy

    # ---- 2. affine refinement on bright sources, then a linear WCS
    nb = src_ok[np.argsort(-fl, kind="stable")[: 4 * cfg.vote_sources]]
    i = j = np.zeros(0, dtype=np.int64)
    for radius in (1.5 * bin_px, 0.75 * bin_px):
        i, j, _ = kernels.match_nearest(x[nb], y[nb], px, py, float(radius))
        if i.size < 3:
            _fail(f"too few bright matches after the vote: {i.size} (vote {votes})", n_matches=i.size)
        f = _affine(rx[j], ry[j], x[nb][i], y[nb][i])
        px, py = f(rx, ry)
    ra_c, dec_c = (float(t[0]) for t in header_wcs.all_pix2world(np.array([cx]), np.array([cy]), 0))
    wcs = fit_tan_sip(x[nb][i], y[nb][i], ref_ra[on][j], ref_dec[on][j], (cx, cy), (ra_c, dec_c), 1,
                      weights=1.0 / sig2[nb][i], shape=shape)

    # ---- 3. match everything, shrinking radius, fit TAN-SIP with clipping
    rxi, reta = tan_project(ref_ra[on], ref_dec[on], ra_c, dec_c)
    rxi *= ARCSEC_PER_DEG
    reta *= ARCSEC_PER_DEG
    n_terms = (cfg.sip_degree + 1) * (cfg.sip_degree + 2) // 2
    sip_min = max(3 * n_terms, cfg.min_matches)
    radii = [r for r in (4 * cfg.match_radius, 2 * cfg.match_radius) if r < 1.5 * cfg.vote_bin]
    radii.append(cfg.match_radius)
    keep_i = keep_j = np.zeros(0, dtype=np.int64)
    resid = np.zeros(0)
    degree = 1
    for it, radius in enumerate(radii):
        sra, sdec = wcs.all_pix2world(x[src_ok], y[src_ok], 0)
        sxi, seta = tan_project(sra, sdec, ra_c, dec_c)
        i, j, _ = kernels.match_nearest(sxi * ARCSEC_PER_DEG, seta * ARCSEC_PER_DEG, rxi, reta, float(radius))
        si = src_ok[i]
        if i.size < cfg.min_matches:
            _fail(f"too few reference matches: {i.size} within {radius:.2f} arcsec (need {cfg.min_matches})",
                  n_matches=i.size)
        final = it == len(radii) - 1
        good = _flux_consistent(flux[si], ref_mag[on][j], cfg.mag_tolerance)
        degree, wcs, keep, resid = _clipped_fit(
            x[si], y[si], ref_ra[on][j], ref_dec[on][j], sig2[si], (cx, cy), (ra_c, dec_c), shape, cfg,
            sip_min, cfg.clip_iterations if final else 1, good, with_inverse=final)
        keep_i, keep_j = si[keep], on[j][keep]
        resid = resid[keep]

    n = int(keep_i.size)
    rms = float(np.sqrt(np.mean(resid**2))) if n else float("nan")
    if n < cfg.min_matches:
        _fail(f"too few reference matches: {n} (need {cfg.min_matches})", n_matches=n, rms=rms)
    if not rms <= cfg.max_rms:
        _fail(f"astrometric fit RMS {rms:.3f} arcsec exceeds {cfg.max_rms} arcsec ({n} matches)",
              n_matches=n, rms=rms)
    offset, rotation = _relative_pose(wcs, header_wcs, shape)
    return AstrometryResult(wcs=wcs, rms=rms, n_matches=n, src_index=keep_i.astype(np.int64),
                            ref_index=keep_j.astype(np.int64), offset=offset, rotation=rotation,
                            sip_degree=degree if degree >= 2 else 0, votes=int(votes), residuals=resid)
