"""PSF model: an elliptical Moffat whose core radius and ellipticity vary as low-order
polynomials over the detector, fitted to bright, isolated, unsaturated stars.

Profile (pixels, fractions of the total flux)::

    P(dx, dy) = (beta - 1) / (pi alpha^2) * (1 + d^T C^-1 d)^-beta,
    C = alpha^2 / sqrt(1 - e1^2 - e2^2) * [[1 + e1, e2], [e2, 1 - e1]]

integrated over each pixel (3x3 sub-sampling in the core). ``log alpha``, ``e1`` and ``e2``
are polynomials of order ``spatial_order`` in ``u = (x - xc) / (nx / 2)``,
``v = (y - yc) / (ny / 2)`` (``xc, yc`` the detector centre); ``beta`` is one number.
FWHM = 2 alpha sqrt(2^(1/beta) - 1) (geometric mean of the major and minor axes).
"""

from __future__ import annotations

import math

import numpy as np

from ..config import PsfConfig
from ..errors import AlgorithmError
from ..products import MaskBit
from . import kernels

_EXCL = int(MaskBit.SAT | MaskBit.BAD | MaskBit.NO_DATA | MaskBit.HOT)
_AVOID = int(MaskBit.SAT | MaskBit.BAD | MaskBit.NO_DATA | MaskBit.HOT | MaskBit.CR)


def _terms(order: int) -> list[tuple[int, int]]:
    return [(i, j) for n in range(order + 1) for j in range(n + 1) for i in [n - j]]


def fwhm_from(alpha, beta):
    """FWHM [pixels] of a Moffat with core radius alpha [pixels] and index beta."""
    return 2.0 * np.asarray(alpha) * np.sqrt(2.0 ** (1.0 / np.asarray(beta)) - 1.0)


def alpha_from(fwhm, beta):
    """Moffat core radius [pixels] of a given FWHM [pixels] and index beta."""
    return np.asarray(fwhm) / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


class PsfModel:
    """A spatially varying elliptical Moffat PSF of one detector.

    ``shape`` is the detector's (ny, nx); ``coeffs`` holds the polynomial coefficients of
    ``log_alpha``, ``e1`` and ``e2``; ``apcorr`` multiplies PSF fluxes so that they are
    total fluxes (1 when the model's own normalisation is trusted).
    """

    def __init__(self, shape, beta, log_alpha, e1, e2, order=0, apcorr=1.0, n_stars=0,
                 residual_rms=float("nan")):
        self.shape = (int(shape[0]), int(shape[1]))
        self.order = int(order)
        self.beta = float(beta)
        nt = len(_terms(self.order))
        self.log_alpha = np.zeros(nt)
        self.e1 = np.zeros(nt)
        self.e2 = np.zeros(nt)
        self.log_alpha[: len(log_alpha)] = log_alpha
        self.e1[: len(e1)] = e1
        self.e2[: len(e2)] = e2
        self.apcorr = float(apcorr)
        self.n_stars = int(n_stars)
        self.residual_rms = float(residual_rms)
        #: (x, y) of the stars the model was fitted to (not serialised)
        self.stars = (np.zeros(0), np.zeros(0))

    # --- construction -----------------------------------------------------------------
    @classmethod
    def gaussian_like(cls, fwhm: float, shape, beta: float = 3.5) -> PsfModel:
        """A round, constant Moffat of the given FWHM [pixels] (initial guess)."""
        return cls(shape, beta, [math.log(float(alpha_from(fwhm, beta)))], [0.0], [0.0], 0)

    # --- evaluation -------------------------------------------------------------------
    def _uv(self, x, y):
        ny, nx = self.shape
        u = (np.asarray(x, dtype=np.float64) - 0.5 * (nx - 1)) / (0.5 * nx)
        v = (np.asarray(y, dtype=np.float64) - 0.5 * (ny - 1)) / (0.5 * ny)
        return u, v

    def _basis(self, x, y):
        u, v = self._uv(x, y)
        u = np.atleast_1d(u)
        v = np.atleast_1d(v)
        return np.stack([u**i * v**j for i, j in _terms(self.order)], axis=-1)

    def params_at(self, x, y):
        """(alpha, beta, e1, e2) arrays at pixel positions x, y."""
        b = self._basis(x, y)
        alpha = np.exp(b @ self.log_alpha)
        e1 = b @ self.e1
        e2 = b @ self.e2
        return alpha, np.full_like(alpha, self.beta), e1, e2

    @property
    def fwhm(self) -> float:
        """FWHM [pixels] at the detector centre."""
        return self.fwhm_at(0.5 * (self.shape[1] - 1), 0.5 * (self.shape[0] - 1))

    def fwhm_at(self, x, y):
        """FWHM [pixels] at (x, y) (scalars in, float out; arrays in, array out)."""
        alpha, beta, _, _ = self.params_at(x, y)
        f = fwhm_from(alpha, beta)
        return float(f[0]) if np.ndim(x) == 0 and np.ndim(y) == 0 else f

    @property
    def fit_radius(self) -> int:
        """Half-size [pixels] of the stamps used for PSF photometry (about 2 FWHM)."""
        return int(max(4, math.ceil(2.0 * self.fwhm)))

    def stamp(self, x: float, y: float, radius: int) -> np.ndarray:
        """The PSF at (x, y) on a ``(2r+1, 2r+1)`` float64 stamp normalised to sum 1.

        The stamp's centre pixel is (round(x), round(y)); the profile is centred at the
        sub-pixel offset (x - round(x), y - round(y)) from it.
        """
        radius = int(radius)
        alpha, beta, e1, e2 = self.params_at(x, y)
        cx = math.floor(x + 0.5)
        cy = math.floor(y + 0.5)
        s = kernels.moffat_stamp(alpha[0], beta[0], e1[0], e2[0], x - cx, y - cy, radius)
        return s / s.sum()

    # --- serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "model": "moffat",
            "shape": list(self.shape),
            "order": self.order,
            "beta": self.beta,
            "log_alpha": [float(c) for c in self.log_alpha],
            "e1": [float(c) for c in self.e1],
            "e2": [float(c) for c in self.e2],
            "apcorr": self.apcorr,
            "n_stars": self.n_stars,
            "residual_rms": None if not math.isfinite(self.residual_rms) else self.residual_rms,
            "fwhm": self.fwhm,
        }

    @classmethod
    def from_dict(cls, d: dict) -> PsfModel:
        rr = d.get("residual_rms")
        return cls(d["shape"], d["beta"], d["log_alpha"], d["e1"], d["e2"], d.get("order", 0),
                   d.get("apcorr", 1.0), d.get("n_stars", 0),
                   float("nan") if rr is None else rr)

    def __repr__(self) -> str:
        return (f"PsfModel(fwhm={self.fwhm:.3f} px, beta={self.beta:.2f}, order={self.order}, "
                f"n_stars={self.n_stars}, apcorr={self.apcorr:.4f})")


# --- fitting ----------------------------------------------------------------------------


def select_psf_stars(image, variance, mask, x, y, cfg: PsfConfig, fwhm_guess: float):
    """Indices of candidates (x, y) fit to model the PSF: away from edges and masked pixels,
    isolated from the other candidates, S/N > cfg.min_snr in a 2-FWHM aperture, and on the
    stellar locus of sizes (adaptive moments within 15% of the densest size cluster)."""
    ny, nx = image.shape
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = x.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    r = cfg.stamp_radius
    ok = (x >= r) & (x < nx - 1 - r) & (y >= r) & (y < ny - 1 - r) & np.isfinite(x) & np.isfinite(y)
    # isolation: no other candidate within the stamp radius
    if n > 1:
        from scipy.spatial import cKDTree

        xy = np.column_stack([x, y])
        ok &= cKDTree(xy).query_ball_point(xy, r, return_length=True) <= 1
    flagmap = np.zeros(16, dtype=np.int32)
    for b in range(16):
        if (1 << b) & _AVOID:
            flagmap[b] = 1
    # aperture S/N of the candidates that passed so far
    fl = np.full(n, np.nan)
    fe = np.full(n, np.nan)
    idx = np.flatnonzero(ok)
    rap = np.full(idx.size, max(2.0 * fwhm_guess, 3.0))
    fl[idx], fe[idx], _, afl = kernels.aperture_flux_kernel(image, variance, mask, x[idx], y[idx], rap, _EXCL,
                                                            flagmap, 1)
    ok[idx[afl != 0]] = False
    with np.errstate(invalid="ignore", divide="ignore"):
        ok &= fl / fe > cfg.min_snr
    # stellar locus of sizes
    # (moments only of the candidates that passed so far: they are measured one by one)
    idx = np.flatnonzero(ok)
    ixx = np.full(n, np.nan)
    iyy = np.full(n, np.nan)
    ixx[idx], iyy[idx], _, mok = kernels.adaptive_moments_kernel(image, mask, x[idx], y[idx],
                                                                 np.full(idx.size, fwhm_guess / 2.3548),
                                                                 _EXCL, 50, 1e-4)
    idx = idx[mok]
    if idx.size >= 3:
        t = np.sort((ixx + iyy)[idx])
        hi = np.searchsorted(t, t * 1.15, side="right")
        k = int(np.argmax(hi - np.arange(t.size)))
        tc = float(np.median(t[k: hi[k]]))
        tt = (ixx + iyy)[idx]
        idx = idx[np.abs(tt / tc - 1.0) < 0.15]
    snr = fl[idx] / fe[idx]
    idx = idx[np.argsort(-snr, kind="stable")][: cfg.max_stars]
    return idx


def fit_psf(image, variance, mask, x, y, cfg: PsfConfig = PsfConfig(), fwhm_guess: float = 4.0,
            select: bool = True, footprints=None) -> PsfModel:
    """Fit the PSF model to stars among candidate positions (x, y) [pixels].

    ``image`` is background-subtracted [e-], ``variance`` [e^2], ``mask`` a MaskBit plane.
    Candidates are filtered by :func:`select_psf_stars` (unless ``select`` is False); the
    model (polynomial order reduced when stars are few) is fitted jointly to all stamps
    with per-star flux and sky solved linearly, outliers rejected once. ``footprints`` (an
    int label image of detection footprints, 0 = none), when given, removes from each
    star's stamp the pixels of other footprints (neighbours). Raises
    :class:`AlgorithmError` (with ``n_stars``) when fewer than 3 stars are usable.
    """
    image = np.asarray(image, dtype=np.float32)
    variance = np.asarray(variance, dtype=np.float32)
    mask = np.zeros(image.shape, np.uint16) if mask is None else np.asarray(mask, dtype=np.uint16)
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    y = np.atleast_1d(np.asarray(y, dtype=np.float64))
    idx = select_psf_stars(image, variance, mask, x, y, cfg, fwhm_guess) if select else np.arange(x.size)
    if idx.size < 3:
        raise AlgorithmError(
            f"PSF: only {idx.size} usable stars (S/N > {cfg.min_snr:g}, isolated, unsaturated); need >= 3",
            n_stars=int(idx.size))
    sx, sy = x[idx], y[idx]
    # refine centres with a windowed centroid
    sig = np.full(sx.size, fwhm_guess / 2.3548)
    cx, cy, _, _, cok = kernels.windowed_centroid_kernel(image, variance, mask, sx, sy, sig, _EXCL, 30, 1e-4)
    sx = np.where(cok, cx, sx)
    sy = np.where(cok, cy, sy)
    # log alpha (the size, to which PSF fluxes are most sensitive: a 1% error in FWHM is a
    # ~2% flux error) keeps its spatial order down to 2 stars per coefficient; e1, e2 need
    # 15 stars per coefficient (each star measures them far less well)
    order = cfg.spatial_order
    while order > 0 and sx.size < 2 * len(_terms(order)):
        order -= 1
    eorder = order
    while eorder > 0 and sx.size < 15 * len(_terms(eorder)):
        eorder -= 1
    # 40 bright stars per coefficient constrain the model well; more only cost time
    nfit = 40 * len(_terms(order))
    if sx.size > nfit:
        sx, sy = sx[:nfit], sy[:nfit]
    # stamps of at most 3 FWHM: beyond, the wings carry little weight and neighbours more
    radius = int(min(cfg.stamp_radius, max(6, math.ceil(3.0 * fwhm_guess))))
    model, keep, rms = _fit(image, variance, mask, sx, sy, radius, order, fwhm_guess,
                            footprints=footprints, eorder=eorder)
    if keep.sum() < keep.size and keep.sum() >= 3:
        model, _, rms = _fit(image, variance, mask, sx[keep], sy[keep], radius, order,
                             model.fwhm, start=model, footprints=footprints, eorder=eorder)
        n_used = int(keep.sum())
    else:
        n_used = int(sx.size)
    model.n_stars = n_used
    model.residual_rms = rms
    used = keep if n_used < sx.size else np.ones(sx.size, bool)
    model.stars = (sx[used], sy[used])
    return model


def _stamps(image, variance, mask, sx, sy, radius, footprints=None):
    n = sx.size
    m = 2 * radius + 1
    d = np.zeros((n, m, m))
    w = np.zeros((n, m, m))
    icx = np.floor(sx + 0.5).astype(int)
    icy = np.floor(sy + 0.5).astype(int)
    for k in range(n):
        sl = (slice(icy[k] - radius, icy[k] + radius + 1), slice(icx[k] - radius, icx[k] + radius + 1))
        dd = image[sl].astype(np.float64)
        vv = variance[sl].astype(np.float64)
        good = ((mask[sl] & _EXCL) == 0) & np.isfinite(dd) & np.isfinite(vv) & (vv > 0)
        if footprints is not None:
            fp = footprints[sl]
            own = fp[radius, radius]
            good &= (fp == 0) | (fp == own)
        d[k] = np.where(good, dd, 0.0)
        w[k] = np.where(good, 1.0 / np.where(good, vv, 1.0), 0.0)
    return d, w, sx - icx, sy - icy


def _fit(image, variance, mask, sx, sy, radius, order, fwhm_guess, start: PsfModel | None = None,
         footprints=None, maxiter: int = 40, eorder: int | None = None):
    """Joint fit of the model to star stamps: Levenberg-Marquardt on the non-linear
    parameters (log(beta - 1.05), polynomial coefficients of log alpha, e1, e2) with the
    per-star flux and sky solved linearly at every step (variable projection; the Jacobian
    from :func:`kernels.moffat_stamp_derivatives` with the flux/sky directions projected
    out, Kaufman's approximation). ``e1``, ``e2`` are polynomials of order ``eorder``
    (default ``order``, at most ``order``; their higher terms stay 0). Returns (model,
    keep, rms): ``keep`` rejects stars with a reduced chi^2 above 3 times the median."""
    terms = _terms(order)
    nt = len(terms)
    ne = len(_terms(order if eorder is None else min(eorder, order)))
    d, w, fx, fy = _stamps(image, variance, mask, sx, sy, radius, footprints)
    n = d.shape[0]
    sw = np.sqrt(w)
    proto = PsfModel(image.shape, 3.5, [0.0], [0.0], [0.0], order)
    B = proto._basis(sx, sy)  # (n, nt)
    a22 = w.sum(axis=(1, 2))
    b2 = (w * d).sum(axis=(1, 2))

    Be = B[:, :ne]  # terms are ordered by degree: the first ne are those of order eorder

    def unpack(p):
        return 1.05 + math.exp(p[0]), p[1: 1 + nt], p[1 + nt: 1 + nt + ne], p[1 + nt + ne: 1 + nt + 2 * ne]

    def star_params(p):
        beta, la, e1, e2 = unpack(p)
        return np.exp(B @ la), np.full(n, beta), Be @ e1, Be @ e2

    def evaluate(p):
        al, be, e1, e2 = star_params(p)
        P = kernels.moffat_stamps(al, be, e1, e2, fx, fy, radius)
        # per-star weighted fit of flux * P + sky
        a11 = (w * P * P).sum(axis=(1, 2))
        a12 = (w * P).sum(axis=(1, 2))
        b1 = (w * P * d).sum(axis=(1, 2))
        det = a11 * a22 - a12 * a12
        det = np.where(det > 0, det, 1.0)
        f = (a22 * b1 - a12 * b2) / det
        sky = (a11 * b2 - a12 * b1) / det
        r = (d - f[:, None, None] * P - sky[:, None, None]) * sw
        return r, P, f, float((r * r).sum())

    def normal_equations(p, P, f, r):
        al, be, e1, e2 = star_params(p)
        D = kernels.moffat_stamp_derivatives(al, be, e1, e2, fx, fy, radius)  # (n, 4, m, m)
        J = (D * (f[:, None, None, None] * sw[:, None])).reshape(n, 4, -1)
        U = np.stack([(P * sw).reshape(n, -1), sw.reshape(n, -1)], axis=1)  # (n, 2, npix)
        gram = np.einsum("kap,kbp->kab", U, U) + 1e-300 * np.eye(2)
        coef = np.linalg.solve(gram, np.einsum("kap,kbp->kab", U, J))  # (n, 2, 4)
        J = J - np.einsum("kab,kap->kbp", coef, U)
        M = np.einsum("kap,kbp->kab", J, J)
        g = np.einsum("kap,kp->ka", J, r.reshape(n, -1))
        # star-level (log alpha, beta, e1, e2) -> global parameters
        T = np.zeros((n, 4, 1 + nt + 2 * ne))
        T[:, 0, 1: 1 + nt] = B
        T[:, 1, 0] = be - 1.05
        T[:, 2, 1 + nt: 1 + nt + ne] = Be
        T[:, 3, 1 + nt + ne:] = Be
        JtJ = np.einsum("kap,kab,kbq->pq", T, M, T)
        Jtr = np.einsum("kap,ka->p", T, g)
        return JtJ, Jtr

    if start is None:
        beta0 = 3.0
        p = np.zeros(1 + nt + 2 * ne)
        p[0] = math.log(beta0 - 1.05)
        p[1] = math.log(float(alpha_from(fwhm_guess, beta0)))
    else:
        p = np.concatenate([[math.log(max(start.beta - 1.05, 1e-3))], start.log_alpha, start.e1[:ne], start.e2[:ne]])
    lo, hi = math.log(0.2), math.log(30.0)  # 1.25 < beta < 31
    p[0] = min(max(p[0], lo), hi)
    r, P, f, cost = evaluate(p)
    lam = 1e-3
    for _ in range(maxiter):
        JtJ, Jtr = normal_equations(p, P, f, r)
        diag = np.maximum(np.diag(JtJ), 1e-30)
        improved = False
        for _ in range(10):
            try:
                step = np.linalg.solve(JtJ + lam * np.diag(diag), Jtr)
            except np.linalg.LinAlgError:
                lam *= 10.0
                continue
            pn = p + step
            pn[0] = min(max(pn[0], lo), hi)
            rn, Pn, fn, cn = evaluate(pn)
            if np.isfinite(cn) and cn <= cost:
                improved = True
                break
            lam *= 10.0
        if not improved:
            break
        done = cost - cn <= 1e-8 * cost or np.all(np.abs(pn - p) <= 1e-6 * (1.0 + np.abs(p)))
        p, r, P, f, cost = pn, rn, Pn, fn, cn
        lam = max(lam / 10.0, 1e-9)
        if done:
            break
    beta, la, e1, e2 = unpack(p)
    model = PsfModel(image.shape, beta, la, e1, e2, order)
    npix = (w > 0).sum(axis=(1, 2))
    chi2 = (r * r).sum(axis=(1, 2)) / np.maximum(npix - 2, 1)
    med = np.median(chi2)
    keep = chi2 < 3.0 * max(med, 1.0)
    rms = float(np.sqrt(np.median(chi2)))
    return model, keep, rms
