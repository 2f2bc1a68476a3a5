"""Survey orchestration: plan the exposures, render every (exposure, detector), write raw FITS
files, the reference catalogue and the truth tables.

Everything is drawn from ``numpy.random.Generator`` objects seeded by
``SeedSequence([seed, ...])`` (per frame: ``[seed, expid, detector]``), so the same
parameters give byte-identical files. No timestamps are written.

Physical model of a science pixel (electrons)::

    e = Poisson((objects + sky) * response + dark_rate * exptime) + cosmic rays + read noise
    ADU = e / gain + bias + bias_structure(y, x) + drift(row)      (clipped at SATURATE)

``response`` (the flat field: vignetting, 1% pixel-to-pixel, low-response columns) has a median
of 1 on each detector and band, so ``flux_e`` of the truth is what a pipeline dividing by a
median-normalised flat measures. Cosmic rays are added after the response (charge deposited
directly in the silicon) and are not convolved with the PSF.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import kernels
from .camera import INSTRUMENT, PIXEL_SCALE, AmpGeom, Camera, DetectorGeom, make_camera
from .sky import (SkyCatalog, epoch_mags, make_catalog, moffat_alpha, moffat_mixture,
                  sersic_mixture, _tan_to_sky)

AB_ZP_NJY = 31.4

ZP_1S = {"u": 26.9, "g": 28.3, "r": 28.3, "i": 28.1, "z": 27.7, "y": 26.8}
"""AB magnitude giving 1 e-/s at the top of the (median-normalised) detector, per band."""
SKY_MAG = {"u": 22.9, "g": 22.3, "r": 21.2, "i": 20.5, "z": 19.6, "y": 18.6}
"""Dark-sky brightness, AB mag/arcsec^2."""
FLAT_LEVEL = {"u": 8000.0, "g": 12000.0, "r": 14000.0, "i": 15000.0, "z": 13000.0, "y": 10000.0}
"""Mean dome-flat level, e-/pixel."""


@dataclass(frozen=True)
class SurveyParams:
    """Every knob of a simulated survey (the CLI sets the first few; tests may set any)."""

    visits: int = 3                 #: visits per band
    detectors: int = 4
    bands: str = "gri"
    shape: tuple = (2048, 2048)     #: (ny, nx) of a detector, pixels
    seed: int = 1
    ra: float = 150.0               #: field centre, deg
    dec: float = 2.0
    compress: bool = False
    exptime: float = 30.0           #: science exposure time, s
    n_bias: int = 5
    n_dark: int = 3
    n_flat: int = 3                 #: per band
    dark_exptime: float = 300.0
    flat_exptime: float = 5.0
    mjd0: float = 61000.0           #: first (calibration) night
    survey_days: float = 28.0       #: science visits spread over this many days
    dither: tuple = (0.05, 0.10)    #: dither range, fraction of the detector size (per axis)
    fwhm: tuple = (0.6, 1.2)        #: PSF FWHM range over visits, arcsec
    beta: tuple = (2.5, 4.0)        #: Moffat beta range over visits
    wcs_offset: tuple = (2.0, 10.0)   #: header-WCS pointing error range, arcsec
    wcs_rotation: tuple = (0.05, 0.2)  #: header-WCS rotation error range, deg (random sign)
    cosmic_rate: float = 2.5e-7     #: cosmic rays per pixel per second
    distortion: float = 2e-11       #: radial optical distortion k (pixel^-2) of the true WCS (SIP)
    star_density: float = 70_000.0  #: stars per deg^2 (13 < r < 25)
    galaxy_density: float = 60_000.0  #: galaxies per deg^2 (18 < r < 25.5)
    refcat_depth: float = 22.0      #: faintest reference star (r, or the first band), AB mag

    def to_json(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        for k in ("dither", "fwhm", "beta", "wcs_offset", "wcs_rotation"):
            d[k] = list(d[k])
        return d


@dataclass
class SimulationResult:
    """Paths written by :func:`simulate`."""

    outdir: Path
    bias: list = field(default_factory=list)
    dark: list = field(default_factory=list)
    flat: list = field(default_factory=list)
    science: list = field(default_factory=list)
    refcat: Path | None = None
    truth_objects: Path | None = None
    truth_sources: Path | None = None
    truth_frames: Path | None = None
    truth_cosmics: Path | None = None
    params: Path | None = None

    @property
    def raw_files(self) -> list:
        return [*self.bias, *self.dark, *self.flat, *self.science]


@dataclass(frozen=True)
class Visit:
    expid: int
    band: str
    mjd: float
    ra: float                 #: true boresight, deg
    dec: float
    hdr_ra: float             #: boresight written in the header (pointing error), deg
    hdr_dec: float
    hdr_rotation: float       #: header-WCS rotation error, deg
    fwhm: float               #: PSF FWHM on the optical axis, arcsec
    beta: float
    psf_e1: float
    psf_e2: float
    psf_gx: float             #: fractional FWHM gradient across the focal plane (x, y)
    psf_gy: float
    zp: float                 #: mag = zp - 2.5 log10(e-)
    sky: float                #: e-/pixel at the field centre
    sky_gx: float             #: fractional sky gradient per focal-plane radius
    sky_gy: float


# --- planning -----------------------------------------------------------------------------

def plan_visits(p: SurveyParams, camera: Camera) -> list[Visit]:
    """Science visits: bands interleaved, dithered, spread over ``survey_days``."""
    rng = np.random.default_rng(np.random.SeedSequence([p.seed, 2]))
    ny, nx = p.shape
    n_total = p.visits * len(p.bands)
    out = []
    v = 0
    for k in range(p.visits):
        for band in p.bands:
            night = math.floor(v * p.survey_days / max(n_total, 1))
            mjd = p.mjd0 + 1.0 + night + 0.05 + 0.004 * v
            ddx = rng.uniform(*p.dither) * nx * rng.choice([-1, 1])
            ddy = rng.uniform(*p.dither) * ny * rng.choice([-1, 1])
            scale = PIXEL_SCALE / 3600.0
            ra, dec = _tan_to_sky(np.array([-ddx * scale]), np.array([ddy * scale]), p.ra, p.dec)
            off = rng.uniform(*p.wcs_offset) / 3600.0
            ang = rng.uniform(0, 2 * np.pi)
            hra, hdec = _tan_to_sky(np.array([off * np.cos(ang)]), np.array([off * np.sin(ang)]),
                                    ra[0], dec[0])
            rot = rng.uniform(*p.wcs_rotation) * rng.choice([-1, 1])
            fwhm = rng.uniform(*p.fwhm)
            beta = rng.uniform(*p.beta)
            e1, e2 = rng.normal(0, 0.02, 2)
            gx, gy = rng.uniform(-0.03, 0.03, 2)
            transparency = -abs(rng.normal(0, 0.02)) - (rng.uniform(0, 0.15) if rng.uniform() < 0.1 else 0)
            zp = ZP_1S.get(band, 28.0) + 2.5 * math.log10(p.exptime) + transparency
            sky_mag = SKY_MAG.get(band, 21.0) - rng.uniform(0.0, 0.4)
            sky = 10 ** (-0.4 * (sky_mag - zp)) * PIXEL_SCALE ** 2
            sgx, sgy = rng.uniform(-0.02, 0.02, 2)
            out.append(Visit(10000 + v, band, round(mjd, 6), float(ra[0]), float(dec[0]),
                             float(hra[0]), float(hdec[0]), float(rot), float(fwhm), float(beta),
                             float(e1), float(e2), float(gx), float(gy), float(zp), float(sky),
                             float(sgx), float(sgy)))
            v += 1
    return out


# --- WCS ----------------------------------------------------------------------------------

def wcs_cards(ra: float, dec: float, det: DetectorGeom, rotation_deg: float = 0.0,
              distortion: float = 0.0) -> dict:
    """TAN (or TAN-SIP) WCS keywords of a detector for a boresight (ra, dec) and a camera rotation.

    CRPIX is 1-based (FITS): the optical axis at focal-plane (0, 0) is detector pixel
    ``(-fp_x0, -fp_y0)`` 0-based. North up, East left (CD1_1 < 0) at zero rotation.
    ``distortion`` k (pixel^-2) adds the camera's radial distortion about the optical axis as
    SIP terms: ``u' = u (1 + k r^2)``, ``v' = v (1 + k r^2)`` with (u, v) pixels from CRPIX.
    """
    s = PIXEL_SCALE / 3600.0
    t = math.radians(rotation_deg)
    c, si = math.cos(t), math.sin(t)
    sip = distortion != 0.0
    cards = {
        "CTYPE1": "RA---TAN-SIP" if sip else "RA---TAN", "CTYPE2": "DEC--TAN-SIP" if sip else "DEC--TAN",
        "CUNIT1": "deg", "CUNIT2": "deg",
        "CRVAL1": float(ra), "CRVAL2": float(dec),
        "CRPIX1": float(-det.fp_x0 + 1.0), "CRPIX2": float(-det.fp_y0 + 1.0),
        "CD1_1": -s * c, "CD1_2": s * si,
        "CD2_1": s * si, "CD2_2": s * c,
        "RADESYS": "ICRS", "EQUINOX": 2000.0,
    }
    if sip:
        k = float(distortion)
        cards.update({"A_ORDER": 3, "A_3_0": k, "A_1_2": k, "B_ORDER": 3, "B_0_3": k, "B_2_1": k})
    return cards


def wcs_from_cards(cards: dict):
    from astropy.io import fits
    from astropy.wcs import WCS
    h = fits.Header()
    for k, v in cards.items():
        h[k] = v
    return WCS(h)


def cards_text(cards: dict) -> str:
    from astropy.io import fits
    h = fits.Header()
    for k, v in cards.items():
        h[k] = v
    return h.tostring(sep="\n")


# --- detector properties -------------------------------------------------------------------

def detector_rng(p: SurveyParams, det: int, what: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([p.seed, 0xDE7, det, what]))


def response_map(p: SurveyParams, camera: Camera, det: DetectorGeom, band: str) -> np.ndarray:
    """Flat-field response (median 1): focal-plane vignetting x pixel-to-pixel x bad columns."""
    ny, nx = det.shape
    rng = detector_rng(p, det.detector, 1)
    p2p = 1.0 + 0.01 * rng.standard_normal((ny, nx))
    n_bad = int(rng.integers(2, 4))
    cols = rng.choice(np.arange(8, nx - 8), n_bad, replace=False)
    for c in cols:
        y0 = int(rng.integers(0, ny // 2)) if rng.uniform() < 0.5 else 0
        p2p[y0:, c] *= rng.uniform(0.2, 0.45)
    fx = (det.fp_x0 + np.arange(nx, dtype=np.float64))[None, :]
    fy = (det.fp_y0 + np.arange(ny, dtype=np.float64))[:, None]
    r2 = (fx ** 2 + fy ** 2) / camera.fp_radius ** 2
    bi = "ugrizy".find(band) if band in "ugrizy" else 2
    vign = 1.0 - 0.12 * r2 + 0.01 * (bi - 2) * fx / camera.fp_radius
    resp = p2p * vign
    return resp / np.median(resp)


def bad_columns(p: SurveyParams, det: DetectorGeom) -> np.ndarray:
    """Columns with low response (for tests)."""
    rng = detector_rng(p, det.detector, 1)
    rng.standard_normal(det.shape)
    n_bad = int(rng.integers(2, 4))
    return np.sort(rng.choice(np.arange(8, det.nx - 8), n_bad, replace=False))


def dark_map(p: SurveyParams, det: DetectorGeom) -> np.ndarray:
    """Dark current e-/s per pixel: a low base level plus a few hundred hot pixels."""
    ny, nx = det.shape
    rng = detector_rng(p, det.detector, 2)
    base = rng.uniform(0.01, 0.05)
    dark = np.full((ny, nx), base) * (1.0 + 0.1 * rng.standard_normal((ny, nx)))
    n_hot = max(30, int(300 * math.sqrt(ny * nx / 2048 ** 2)))
    idx = rng.integers(0, ny * nx, n_hot)
    dark.flat[idx] = 10 ** rng.uniform(np.log10(0.5), np.log10(50.0), n_hot)
    return np.clip(dark, 0.0, None)


def bias_structure(p: SurveyParams, det: DetectorGeom, amp: AmpGeom) -> np.ndarray:
    """Fixed 2D bias pattern of an amplifier's data block in read-out order, ADU."""
    rng = np.random.default_rng(np.random.SeedSequence([p.seed, 0xB1A5, det.detector, ord(amp.name)]))
    ny, nx = amp.data_shape
    col = np.arange(nx)
    row = np.arange(ny)
    glow = 3.0 * np.exp(-(col + amp.prescan) / 25.0)          # near the read-out corner
    colpat = 0.7 * rng.standard_normal(nx)
    wave = 0.5 * np.sin(2 * np.pi * row / rng.uniform(50, 200))[:, None]
    return glow[None, :] + colpat[None, :] + wave + 0.3 * rng.standard_normal((ny, nx))


def row_drift(rng: np.random.Generator, ny: int) -> np.ndarray:
    """Per-frame bias drift along rows (ADU): offset + ramp + slow wiggle."""
    rows = np.arange(ny)
    offset = rng.normal(0, 2.0)
    ramp = rng.uniform(-4, 4) * rows / ny
    wig = rng.uniform(1.0, 3.0) * np.sin(2 * np.pi * rows / rng.uniform(ny / 3, 2 * ny) + rng.uniform(0, 2 * np.pi))
    return offset + ramp + wig


# --- rendering ------------------------------------------------------------------------------

def psf_fwhm_at(v: Visit, camera: Camera, fx, fy):
    """PSF FWHM (arcsec) at focal-plane position (pixels)."""
    R = camera.fp_radius
    return v.fwhm * (1.0 + 0.04 * (fx ** 2 + fy ** 2) / R ** 2 + v.psf_gx * fx / R + v.psf_gy * fy / R)


def _psf_shape(e1, e2):
    """Shape matrix S (det 1) of an ellipticity (e1, e2) and its inverse A."""
    e = math.hypot(e1, e2)
    s = np.array([[1 + e1, e2], [e2, 1 - e1]]) / math.sqrt(max(1 - e * e, 1e-6))
    return s, np.linalg.inv(s)


def render_objects(shape, x, y, flux, is_star, fwhm_px, beta, psf_e, gal_cov_unit, re_px, sersic_n,
                   oversample=3):
    """Noise-free image (e-) of point sources and galaxies, each summing to its flux.

    ``x, y`` 0-based pixel positions; ``fwhm_px`` per object (pixels); ``gal_cov_unit`` per
    galaxy the 2x2 shape covariance of a unit half-light-radius profile in pixel axes;
    ``re_px`` half-light radius in pixels; ``sersic_n`` 1 or 4.
    """
    image = np.zeros(shape, dtype=np.float64)
    S, A = _psf_shape(*psf_e)
    alpha = moffat_alpha(np.asarray(fwhm_px, float), beta)
    flux = np.asarray(flux, float)
    st = np.flatnonzero(is_star)
    if st.size:
        a = alpha[st]
        f = flux[st]
        fw = np.asarray(fwhm_px, float)[st]
        rr = a * (np.maximum(f, 1.0) * (beta - 1) / (np.pi * a * a * 0.02)) ** (1.0 / (2 * beta))
        radius = np.clip(np.ceil(rr), np.ceil(2.5 * fw), 200).astype(np.int64)
        side2 = (2 * radius + 1) ** 2
        offsets = np.concatenate([[0], np.cumsum(side2)[:-1]]).astype(np.int64)
        buf = np.empty(int(side2.sum()))
        n = st.size
        kernels.moffat_stamps(x[st].astype(float), y[st].astype(float), f, a, np.full(n, beta),
                              np.full(n, A[0, 0]), np.full(n, A[0, 1]), np.full(n, A[1, 1]),
                              radius, offsets, int(oversample), fw + 1.0, buf)
        kernels.add_stamps(image, x[st].astype(float), y[st].astype(float), radius, offsets, buf)
    gl = np.flatnonzero(~np.asarray(is_star))
    if gl.size:
        pamp, pvar = moffat_mixture(round(float(beta), 3))
        ng_max = max(len(sersic_mixture(1.0)[0]), len(sersic_mixture(4.0)[0]))
        n = gl.size
        cxx = np.zeros((n, ng_max)); cxy = np.zeros((n, ng_max)); cyy = np.zeros((n, ng_max))
        gamp = np.zeros((n, ng_max)); ncomp = np.zeros(n, np.int64)
        for j, k in enumerate(gl):
            w, var = sersic_mixture(float(sersic_n[k]))
            c = gal_cov_unit[k] * re_px[k] ** 2
            ncomp[j] = len(w)
            gamp[j, :len(w)] = w
            cxx[j, :len(w)] = var * c[0, 0]
            cxy[j, :len(w)] = var * c[0, 1]
            cyy[j, :len(w)] = var * c[1, 1]
        fw = np.asarray(fwhm_px, float)[gl]
        # brighter galaxies get larger stamps: k = 2.5 r_e at 1e3 e-, 4.6 r_e at 1e6 e- (x1.5 for n=4)
        k = np.clip(1.0 + 0.6 * np.log10(np.maximum(flux[gl], 1.0)), 2.5, 5.0)
        ext = np.where(np.asarray(sersic_n)[gl] > 1.5, 1.5, 1.0) * k * re_px[gl]
        radius = np.clip(np.ceil(2.0 * fw + ext), 5, 128).astype(np.int64)
        side2 = (2 * radius + 1) ** 2
        offsets = np.concatenate([[0], np.cumsum(side2)[:-1]]).astype(np.int64)
        buf = np.empty(int(side2.sum()))
        kernels.gaussmix_stamps(x[gl].astype(float), y[gl].astype(float), flux[gl], cxx, cxy, cyy,
                                gamp, ncomp, pvar, pamp, S[0, 0], S[0, 1], S[1, 1], alpha[gl],
                                radius, offsets, buf)
        kernels.add_stamps(image, x[gl].astype(float), y[gl].astype(float), radius, offsets, buf)
    return image


def galaxy_unit_cov(cat: SkyCatalog, idx: np.ndarray, cd: np.ndarray) -> np.ndarray:
    """Pixel-axis covariance (pixels^2, for r_e = 1 pixel) of galaxies, from PA (E of N) and b/a."""
    pa = np.radians(np.nan_to_num(cat.position_angle[idx]))
    q = 1.0 - cat.ellipticity[idx]
    u = np.stack([np.sin(pa), np.cos(pa)], axis=1)     # major axis in (east, north)
    w = np.stack([np.cos(pa), -np.sin(pa)], axis=1)
    csky = u[:, :, None] * u[:, None, :] + (q ** 2)[:, None, None] * w[:, :, None] * w[:, None, :]
    j = cd / np.sqrt(abs(np.linalg.det(cd)))            # orthonormal (deg/pixel normalised)
    jinv = np.linalg.inv(j)
    # intermediate world x increases to the east, so (east, north) = (xi, eta)
    return np.einsum("ij,njk,lk->nil", jinv, csky, jinv)


# --- raw frames ---------------------------------------------------------------------------

def to_amp_arrays(p: SurveyParams, det: DetectorGeom, electrons: np.ndarray,
                  rng: np.random.Generator) -> list[np.ndarray]:
    """Per-amplifier uint16 ADU arrays (prescan | data | overscan) from a detector image in e-."""
    out = []
    for amp in det.amps:
        ny, nx = amp.data_shape
        data_e = amp.to_raw(electrons)
        drift = row_drift(rng, ny).astype(np.float32)[:, None]
        raw = rng.standard_normal(amp.raw_shape, dtype=np.float32)
        raw *= np.float32(amp.rdnoise / amp.gain)
        raw += drift
        raw += np.float32(amp.bias)
        d = slice(amp.prescan, amp.prescan + nx)
        raw[:, d] += (data_e * (1.0 / amp.gain)).astype(np.float32)
        raw[:, d] += bias_structure_cached(p, det, amp)
        raw += np.float32(0.5)
        np.floor(raw, out=raw)
        np.clip(raw, 0, amp.saturate, out=raw)
        out.append(raw.astype(np.uint16))
    return out


_CACHE: dict = {}


def _cached(what, p: SurveyParams, det: DetectorGeom, make):
    """One detector's fixed maps at a time (the survey loops over detectors)."""
    det_key = (p.seed, p.shape, det.detector)
    if _CACHE.get("det") != det_key:
        _CACHE.clear()
        _CACHE["det"] = det_key
    if what not in _CACHE:
        _CACHE[what] = make()
    return _CACHE[what]


def bias_structure_cached(p: SurveyParams, det: DetectorGeom, amp: AmpGeom) -> np.ndarray:
    return _cached(("bias", amp.name), p, det, lambda: bias_structure(p, det, amp).astype(np.float32))


def full_well_cached(p: SurveyParams, det: DetectorGeom) -> np.ndarray:
    return _cached("fw", p, det, lambda: det.amp_map("full_well"))


def cosmic_rays(rng, shape, exptime, rate):
    """Cosmic-ray tracks: (x0, y0, x1, y1, e- per pixel, width) arrays."""
    ny, nx = shape
    n = rng.poisson(rate * ny * nx * max(exptime, 1.0))
    kind = rng.uniform(size=n)
    xc = rng.uniform(-0.5, nx - 0.5, n)
    yc = rng.uniform(-0.5, ny - 0.5, n)
    length = np.where(kind < 0.4, 0.0, np.where(kind < 0.6, rng.uniform(0, 2, n), rng.uniform(3, 25, n)))
    ang = rng.uniform(0, np.pi, n)
    x0 = xc - 0.5 * length * np.cos(ang); x1 = xc + 0.5 * length * np.cos(ang)
    y0 = yc - 0.5 * length * np.sin(ang); y1 = yc + 0.5 * length * np.sin(ang)
    e = np.where(length == 0, rng.uniform(400, 4000, n), rng.uniform(250, 1500, n))
    width = np.where((kind >= 0.4) & (kind < 0.6), 1, 0).astype(np.int64)
    return x0, y0, x1, y1, e, width


POISSON_GAUSS_MIN = 30.0
"""Means (e-) from which Poisson deviates come from the skewness-corrected normal approximation."""


def poisson(rng: np.random.Generator, lam: np.ndarray) -> np.ndarray:
    """Poisson deviates of a 2D array of means (float64): exact below POISSON_GAUSS_MIN,
    Cornish-Fisher normal approximation above (5-10x faster than ``rng.poisson``)."""
    lam = np.ascontiguousarray(lam, dtype=np.float64)
    out = np.empty_like(lam)
    z = rng.standard_normal(lam.shape, dtype=np.float32)
    kernels.poisson_large(lam, z, out)
    small = np.flatnonzero((lam < POISSON_GAUSS_MIN).ravel())
    if small.size:
        u = rng.random(small.size)
        kernels.poisson_small(lam.ravel(), small, u, out.reshape(-1))
    return out


def expose(p: SurveyParams, det: DetectorGeom, rng, signal_e: np.ndarray | None, exptime: float,
           cr_rate: float):
    """Poisson noise, dark current, saturation bleed and cosmic rays on a detector; e- image + CR table."""
    lam = dark_map_cached(p, det) * exptime
    if signal_e is not None:
        lam = lam + signal_e
    img = poisson(rng, lam)
    fw = full_well_cached(p, det)
    cols = np.flatnonzero((img > fw).any(axis=0))
    if cols.size:
        kernels.bleed_columns(img, fw, cols)
    crs = cosmic_rays(rng, det.shape, exptime, cr_rate)
    kernels.deposit_tracks(img, *crs)
    return img, crs


# --- FITS writing -------------------------------------------------------------------------

def sexagesimal_ra(ra_deg: float) -> str:
    """RA in hours as 'hh:mm:ss.ss'."""
    t = round((ra_deg % 360.0) / 15.0 * 3600.0 * 100.0)  # centiseconds of time
    t %= 24 * 3600 * 100
    h, rem = divmod(t, 3600 * 100)
    m, cs = divmod(rem, 60 * 100)
    return f"{h:02d}:{m:02d}:{cs // 100:02d}.{cs % 100:02d}"


def sexagesimal_dec(dec_deg: float) -> str:
    """Dec as '+dd:mm:ss.s'."""
    sign = "-" if dec_deg < 0 else "+"
    t = round(abs(dec_deg) * 3600.0 * 10.0)  # deciseconds of arc
    d, rem = divmod(t, 3600 * 10)
    m, ds = divmod(rem, 60 * 10)
    return f"{sign}{d:02d}:{m:02d}:{ds // 10:02d}.{ds % 10:d}"


def _date_obs(mjd: float) -> str:
    """ISO date of an MJD, to the millisecond ('YYYY-MM-DDThh:mm:ss.sss')."""
    import datetime as dt
    t = dt.datetime(1858, 11, 17) + dt.timedelta(milliseconds=round(mjd * 86_400_000))
    return t.isoformat(timespec="milliseconds")


def write_raw(path: Path, primary: dict, det: DetectorGeom, amp_arrays: list, compress: bool) -> None:
    """One raw file: header-only primary HDU, one image extension per amplifier (RICE if compress).

    Written with fitsio (cfitsio): uint16 pixels as BITPIX 16 + BZERO 32768, RICE_1 tiles of
    one row; no date or checksum keywords, so the bytes depend on the inputs only.
    """
    import fitsio

    from minidr._io import atomic_path

    ph = [{"name": k, "value": v} for k, v in primary.items() if v is not None]
    with atomic_path(path) as tmp:
        with fitsio.FITS(str(tmp), "rw", clobber=True) as f:
            f.write(None, header=ph)
            for amp, arr in zip(det.amps, amp_arrays):
                h = [
                    {"name": "CCDNAME", "value": f"det{det.detector:03d}"},
                    {"name": "AMPNAME", "value": amp.name},
                    {"name": "DATASEC", "value": amp.datasec()},
                    {"name": "BIASSEC", "value": amp.biassec()},
                    {"name": "DETSEC", "value": amp.detsec()},
                    {"name": "GAIN", "value": amp.gain, "comment": "e-/ADU"},
                    {"name": "RDNOISE", "value": amp.rdnoise, "comment": "read noise, e-"},
                    {"name": "SATURATE", "value": amp.saturate, "comment": "ADU"},
                ]
                f.write(np.ascontiguousarray(arr, dtype=np.uint16), header=h, extname=amp.name,
                        compress="RICE" if compress else None,
                        tile_dims=[1, arr.shape[1]] if compress else None)


def _primary(kind: str, expid: int, det: DetectorGeom, mjd: float, exptime: float,
             band: str | None, visit: Visit | None = None) -> dict:
    imagetyp = {"science": "object", "bias": "zero", "dark": "dark", "flat": "flat"}[kind]
    h = {
        "INSTRUME": INSTRUMENT,
        "TELESCOP": "MINISCOPE",
        "OBSTYPE": imagetyp.upper(),
        "IMAGETYP": imagetyp,
        "EXPID": expid,
        "DETECTOR": det.detector,
        "EXPTIME": float(exptime),
        "MJD-OBS": float(mjd),
        "DATE-OBS": _date_obs(mjd),
        "TIMESYS": "UTC",
    }
    if kind == "dark":
        h["FILTER"] = "none"
    elif kind in ("flat", "science"):
        h["FILTER"] = band
    if visit is not None:
        h["RA"] = sexagesimal_ra(visit.hdr_ra)
        h["DEC"] = sexagesimal_dec(visit.hdr_dec)
        h["OBJECT"] = "minidr field"
        h.update(wcs_cards(visit.hdr_ra, visit.hdr_dec, det, visit.hdr_rotation))
    return h


def raw_name(kind: str, expid: int, det: int, band: str | None, compress: bool) -> str:
    suffix = ".fits.fz" if compress else ".fits"
    b = f"{band}-" if kind == "flat" else ""
    return f"{kind}-{b}{expid:06d}-det{det:03d}{suffix}"


# --- frames -------------------------------------------------------------------------------

STAMP_MARGIN = 200
"""Objects this many pixels outside a detector are still drawn (their wings may fall on it)."""


def science_frame(p: SurveyParams, camera: Camera, cat: SkyCatalog, mags: np.ndarray,
                  visit: Visit, det: DetectorGeom, response: np.ndarray, rng):
    """Render one science frame. Returns (electrons, truth-source dict, cosmic-ray arrays, frame dict)."""
    ny, nx = det.shape
    cards = wcs_cards(visit.ra, visit.dec, det, 0.0, p.distortion)
    w = wcs_from_cards(cards)
    x_all, y_all = w.all_world2pix(cat.ra, cat.dec, 0, tolerance=1e-10, maxiter=100)
    sel = np.flatnonzero((x_all > -STAMP_MARGIN) & (x_all < nx - 1 + STAMP_MARGIN)
                         & (y_all > -STAMP_MARGIN) & (y_all < ny - 1 + STAMP_MARGIN))
    x, y = x_all[sel], y_all[sel]
    fx, fy = det.fp_x0 + x, det.fp_y0 + y
    fwhm_px = psf_fwhm_at(visit, camera, fx, fy) / PIXEL_SCALE
    flux_e = 10.0 ** (-0.4 * (mags[sel] - visit.zp))
    is_star = cat.is_star[sel]
    cd = np.array([[cards["CD1_1"], cards["CD1_2"]], [cards["CD2_1"], cards["CD2_2"]]])
    gcov = galaxy_unit_cov(cat, sel, cd)
    re_px = np.nan_to_num(cat.half_light_radius[sel]) / PIXEL_SCALE
    signal = render_objects((ny, nx), x, y, flux_e, is_star, fwhm_px, visit.beta,
                            (visit.psf_e1, visit.psf_e2), gcov, re_px,
                            np.nan_to_num(cat.sersic_n[sel], nan=1.0))
    R = camera.fp_radius
    gx = visit.sky * visit.sky_gx * (det.fp_x0 + np.arange(nx)) / R
    gy = visit.sky * (1.0 + visit.sky_gy * (det.fp_y0 + np.arange(ny)) / R)
    signal += gy[:, None]
    signal += gx[None, :]
    signal *= response
    lam = signal
    fw = full_well_cached(p, det)
    inside = np.flatnonzero((x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5))
    ix = np.floor(x[inside] + 0.5).astype(int)
    iy = np.floor(y[inside] + 0.5).astype(int)
    saturated = (lam[iy, ix] + dark_map_cached(p, det)[iy, ix] * p.exptime) > fw[iy, ix]
    electrons, crs = expose(p, det, rng, lam, p.exptime, p.cosmic_rate)
    k = sel[inside]
    m = mags[k]
    truth = {
        "truthId": cat.truth_id[k],
        "visit": np.full(k.size, visit.expid, np.int64),
        "detector": np.full(k.size, det.detector, np.int32),
        "band": np.full(k.size, visit.band),
        "midpointMjdTai": np.full(k.size, visit.mjd + 0.5 * p.exptime / 86400.0),
        "x": x[inside], "y": y[inside],
        "flux_nJy": 10.0 ** (-0.4 * (m - AB_ZP_NJY)),
        "flux_e": flux_e[inside],
        "mag": m,
        "is_star": is_star[inside],
        "saturated": saturated,
        "psf_fwhm": fwhm_px[inside] * PIXEL_SCALE,
    }
    hdr_cards = wcs_cards(visit.hdr_ra, visit.hdr_dec, det, visit.hdr_rotation)
    wh = wcs_from_cards(hdr_cards)
    cx, cy = (nx - 1) / 2.0, (ny - 1) / 2.0
    (ra_t, dec_t), = w.all_pix2world([[cx, cy]], 0)
    (ra_h, dec_h), = wh.wcs_pix2world([[cx, cy]], 0)
    from astropy.coordinates import SkyCoord
    off = SkyCoord(ra_t, dec_t, unit="deg").separation(SkyCoord(ra_h, dec_h, unit="deg")).arcsec
    fcx, fcy = det.fp_x0 + cx, det.fp_y0 + cy
    frame = {
        "visit": visit.expid, "detector": det.detector, "band": visit.band,
        "mjd": visit.mjd, "exptime": p.exptime, "zero_point": visit.zp,
        "psf_fwhm": float(psf_fwhm_at(visit, camera, fcx, fcy)), "moffat_beta": visit.beta,
        "psf_e1": visit.psf_e1, "psf_e2": visit.psf_e2,
        "sky": float(visit.sky * (1.0 + visit.sky_gx * fcx / R + visit.sky_gy * fcy / R)),
        "boresight_ra": visit.ra, "boresight_dec": visit.dec,
        "wcs_true": cards_text(cards), "wcs_header": cards_text(hdr_cards),
        "wcs_offset_arcsec": float(off), "wcs_rotation_deg": visit.hdr_rotation,
        "n_cosmics": int(crs[0].size), "n_sources": int(k.size),
    }
    return electrons, truth, crs, frame


def dark_map_cached(p: SurveyParams, det: DetectorGeom) -> np.ndarray:
    return _cached("dark", p, det, lambda: dark_map(p, det))


def frame_rng(p: SurveyParams, expid: int, det: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([p.seed, expid, det]))


# --- the survey ---------------------------------------------------------------------------

def run_survey(outdir: Path, p: SurveyParams, progress=None) -> SimulationResult:
    """Write the whole survey into ``outdir`` (which must be empty or absent)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from minidr._io import atomic_path

    outdir = Path(outdir)
    res = SimulationResult(outdir)
    camera = make_camera(p.detectors, tuple(p.shape), p.seed)
    visits = plan_visits(p, camera)
    xmin, xmax, ymin, ymax = camera.fp_extent()
    ny, nx = p.shape
    pad = max(p.dither[1] * max(nx, ny), 0) + 2 * STAMP_MARGIN
    hw = (max(abs(xmin), abs(xmax)) + pad) * PIXEL_SCALE / 3600.0
    hh = (max(abs(ymin), abs(ymax)) + pad) * PIXEL_SCALE / 3600.0
    cat = make_catalog(np.random.default_rng(np.random.SeedSequence([p.seed, 1])), p.ra, p.dec,
                       hw, hh, p.bands, p.star_density, p.galaxy_density)
    epoch = {v.expid: epoch_mags(cat, v.band, v.mjd, p.seed, t0=p.mjd0) for v in visits}

    step = progress or (lambda n=1: None)
    truth_rows, cr_rows, frames = [], [], []
    for d in camera.detectors:
        for i in range(p.n_bias):
            expid, mjd = 100 + i, p.mjd0 + 0.80 + 0.001 * i
            rng = frame_rng(p, expid, d.detector)
            e, crs = expose(p, d, rng, None, 0.0, p.cosmic_rate)
            path = outdir / "raw" / "bias" / raw_name("bias", expid, d.detector, None, p.compress)
            write_raw(path, _primary("bias", expid, d, mjd, 0.0, None), d, to_amp_arrays(p, d, e, rng), p.compress)
            res.bias.append(path)
            step(1)
        for i in range(p.n_dark):
            expid, mjd = 200 + i, p.mjd0 + 0.82 + 0.005 * i
            rng = frame_rng(p, expid, d.detector)
            e, crs = expose(p, d, rng, None, p.dark_exptime, p.cosmic_rate)
            path = outdir / "raw" / "dark" / raw_name("dark", expid, d.detector, None, p.compress)
            write_raw(path, _primary("dark", expid, d, mjd, p.dark_exptime, None), d,
                      to_amp_arrays(p, d, e, rng), p.compress)
            res.dark.append(path)
            step(1)
        responses = {b: response_map(p, camera, d, b) for b in p.bands}
        for bi, band in enumerate(p.bands):
            for i in range(p.n_flat):
                expid, mjd = 300 + 20 * bi + i, p.mjd0 + 0.86 + 0.01 * bi + 0.001 * i
                rng = frame_rng(p, expid, d.detector)
                lam = FLAT_LEVEL.get(band, 20000.0) * responses[band]
                e, crs = expose(p, d, rng, lam, p.flat_exptime, p.cosmic_rate)
                path = outdir / "raw" / "flat" / raw_name("flat", expid, d.detector, band, p.compress)
                write_raw(path, _primary("flat", expid, d, mjd, p.flat_exptime, band), d,
                          to_amp_arrays(p, d, e, rng), p.compress)
                res.flat.append(path)
                step(1)
        for v in visits:
            rng = frame_rng(p, v.expid, d.detector)
            e, truth, crs, frame = science_frame(p, camera, cat, epoch[v.expid], v, d, responses[v.band], rng)
            path = outdir / "raw" / "science" / raw_name("science", v.expid, d.detector, v.band, p.compress)
            write_raw(path, _primary("science", v.expid, d, v.mjd, p.exptime, v.band, v), d,
                      to_amp_arrays(p, d, e, rng), p.compress)
            frame["filename"] = str(path.relative_to(outdir))
            res.science.append(path)
            truth_rows.append(truth)
            frames.append(frame)
            x0, y0, x1, y1, el, width = crs
            cr_rows.append({
                "visit": np.full(x0.size, v.expid, np.int64),
                "detector": np.full(x0.size, d.detector, np.int32),
                "x": 0.5 * (x0 + x1), "y": 0.5 * (y0 + y1),
                "x0": x0, "y0": y0, "x1": x1, "y1": y1,
                "length": np.hypot(x1 - x0, y1 - y0), "electrons_per_pixel": el,
                "wide": width.astype(bool),
            })
            step(1)

    def write_table(name, table):
        path = outdir / name
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp, compression="zstd")
        return path

    res.refcat = write_table("refcat.parquet", refcat_table(p, cat))
    res.truth_objects = write_table("truth_objects.parquet", truth_objects_table(p, cat))
    res.truth_sources = write_table("truth_sources.parquet", _concat(truth_rows))
    res.truth_frames = write_table("truth_frames.parquet", pa.Table.from_pylist(frames))
    res.truth_cosmics = write_table("truth_cosmics.parquet", _concat(cr_rows))
    path = outdir / "simulate.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"generator": "minidr simulate", **p.to_json(),
                                   "visit_ids": [v.expid for v in visits],
                                   "detector_ids": [d.detector for d in camera.detectors]},
                                  indent=2, sort_keys=True) + "\n")
    res.params = path
    return res


def _concat(rows: list):
    import pyarrow as pa
    tables = [pa.table(r) for r in rows]
    return pa.concat_tables(tables) if tables else pa.table({})


def refcat_table(p: SurveyParams, cat: SkyCatalog):
    """Reference stars (ra, dec, <band>_mag, <band>_magErr): stars brighter than refcat_depth."""
    import pyarrow as pa
    rng = np.random.default_rng(np.random.SeedSequence([p.seed, 3]))
    ref_band = "r" if "r" in p.bands else p.bands[0]
    keep = np.flatnonzero(cat.is_star & (cat.mags[ref_band] < p.refcat_depth))
    cols = {"ra": cat.ra[keep], "dec": cat.dec[keep]}
    for b in p.bands:
        m = cat.mags[b][keep]
        err = np.hypot(0.003, 0.02 * 10 ** (0.4 * (m - 21.0)))
        cols[f"{b}_mag"] = m + err * rng.standard_normal(keep.size)
        cols[f"{b}_magErr"] = err
    cols["truthId"] = cat.truth_id[keep]
    return pa.table(cols)


def truth_objects_table(p: SurveyParams, cat: SkyCatalog):
    import pyarrow as pa
    cols = {
        "truthId": cat.truth_id, "ra": cat.ra, "dec": cat.dec, "is_star": cat.is_star,
        "is_variable": cat.is_variable, "var_type": cat.var_type.astype(str),
        "var_amplitude": cat.var_amplitude, "var_period": cat.var_period, "var_phase": cat.var_phase,
    }
    for b in p.bands:
        cols[f"{b}_mag"] = cat.mags[b]
    cols.update({
        "half_light_radius": cat.half_light_radius,
        "sersic_n": cat.sersic_n,
        "profile": np.where(cat.is_star, "", np.where(cat.sersic_n > 1.5, "dev", "exp")),
        "ellipticity": cat.ellipticity,
        "position_angle": cat.position_angle,
    })
    return pa.table(cols)
