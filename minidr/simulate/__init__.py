"""Seeded survey simulator: raw multi-amplifier CCD FITS, a reference catalogue and the truth.

``simulate(outdir, ...)`` writes::

    OUTDIR/raw/{bias,dark,flat,science}/*.fits[.fz]   one file per exposure and detector
    OUTDIR/refcat.parquet          ra, dec [deg], <band>_mag, <band>_magErr [AB]
    OUTDIR/truth_objects.parquet   every simulated star and galaxy
    OUTDIR/truth_sources.parquet   every object on every science frame (true x, y, fluxes)
    OUTDIR/truth_frames.parquet    per (visit, detector): zero point, PSF, sky, true/header WCS
    OUTDIR/truth_cosmics.parquet   every cosmic ray of the science frames
    OUTDIR/simulate.json           the parameters

See docs/simulate.md for the model and conventions.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from ..errors import InputError
from .survey import SimulationResult, SurveyParams, run_survey

__all__ = ["simulate", "SimulationResult", "SurveyParams", "parse_size"]


def parse_size(size) -> tuple[int, int]:
    """Detector shape ``(ny, nx)`` from an int (square), ``"NX"``/``"NXxNY"`` text (width x height)
    or a ``(ny, nx)`` tuple. Both sides must be even and >= 64."""
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            raise InputError(f"size {size!r}: expected (ny, nx)")
        ny, nx = int(size[0]), int(size[1])
    elif isinstance(size, int):
        ny = nx = size
    else:
        m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", str(size))
        if not m:
            raise InputError(f"size {size!r}: expected PIX or WIDTHxHEIGHT, e.g. 2048 or 1024x512")
        nx = int(m.group(1))
        ny = int(m.group(2)) if m.group(2) else nx
    if nx < 64 or ny < 64 or nx % 2 or ny % 2:
        raise InputError(f"size {nx}x{ny}: both sides must be even and at least 64 pixels")
    return ny, nx


def simulate(outdir, *, visits: int = 3, detectors: int = 4, bands: str = "gri", size=2048,
             seed: int = 1, ra: float = 150.0, dec: float = 2.0, compress: bool = False,
             progress=None, **params) -> SimulationResult:
    """Simulate a survey into ``outdir`` (absent or empty) and return the paths written.

    ``visits`` per band; ``size`` a detector's side in pixels (int), ``"WIDTHxHEIGHT"`` or a
    ``(ny, nx)`` tuple; ``ra``/``dec`` the field centre in degrees; ``compress`` writes RICE
    tile-compressed ``.fits.fz``; ``progress`` is called once per file written. Any other
    :class:`SurveyParams` field (e.g. ``wcs_offset=(30, 30)``) may be given as a keyword.
    """
    outdir = Path(outdir)
    if outdir.exists() and (not outdir.is_dir() or any(outdir.iterdir())):
        raise InputError("output directory exists and is not empty", path=str(outdir))
    if visits < 1:
        raise InputError(f"visits must be >= 1, got {visits}")
    if not 1 <= detectors < 1000:
        raise InputError(f"detectors must be between 1 and 999, got {detectors}")
    bands = str(bands)
    if not bands or any(b not in "ugrizy" for b in bands) or len(set(bands)) != len(bands):
        raise InputError(f"bands {bands!r}: expected distinct letters of ugrizy, e.g. gri")
    if not (0.0 <= ra <= 360.0 and -85.0 <= dec <= 85.0):
        raise InputError(f"field centre ({ra}, {dec}) out of range (0<=ra<=360, |dec|<=85)")
    p = SurveyParams(visits=int(visits), detectors=int(detectors), bands=bands,
                     shape=parse_size(size), seed=int(seed), ra=float(ra) % 360.0,
                     dec=float(dec), compress=bool(compress))
    if params:
        unknown = set(params) - set(SurveyParams.__dataclass_fields__)
        if unknown:
            raise InputError(f"unknown simulation parameter(s): {', '.join(sorted(unknown))}")
        p = replace(p, **params)
    outdir.mkdir(parents=True, exist_ok=True)
    return run_survey(outdir, p, progress)


def n_files(visits: int, detectors: int, bands: str, n_bias: int = 5, n_dark: int = 3,
            n_flat: int = 3) -> int:
    """Number of raw files :func:`simulate` writes (for progress bars)."""
    return detectors * (n_bias + n_dark + len(bands) * (n_flat + visits))
