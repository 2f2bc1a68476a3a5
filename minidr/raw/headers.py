"""Keyword and IRAF-section rules: FITS headers -> :class:`~minidr.products.RawInfo`.

Pure functions on plain ``dict`` headers (the reader turns FITS headers into dicts): no files.
IRAF sections (1-based, inclusive ``[x1:x2,y1:y2]``) become 0-based half-open
:class:`~minidr.products.Section` here and nowhere else.

Every refusal is an :class:`~minidr.errors.InputError` naming the file and the keyword.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from ..errors import InputError
from ..products import AmpInfo, RawInfo, Section
from ..sky.coords import parse_dec, parse_ra

IMAGETYP_SYNONYMS = {
    "object": "science",
    "science": "science",
    "light": "science",
    "bias": "bias",
    "zero": "bias",
    "dark": "dark",
    "flat": "flat",
    "domeflat": "flat",
    "dome flat": "flat",
    "skyflat": "flat",
    "sky flat": "flat",
    "twilight": "flat",
    "twiflat": "flat",
}
"""Accepted IMAGETYP values (compared lower-case, stripped) -> minidr image type."""

WCS_KEYS = ("CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CD1_1", "CD1_2", "CD2_1", "CD2_2")
"""Keywords of the approximate TAN WCS stored in :attr:`RawInfo.wcs_header`."""

MAX_VISIT = 10**10
"""EXPID must be below this so that ``sourceId`` (visit * 10**8 + ...) fits in int64."""

MAX_DETECTOR = 999

_SECTION = re.compile(r"^\s*\[\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*\]\s*$")
_BAND = re.compile(r"^[A-Za-z0-9_.+-]+$")


@dataclass(frozen=True)
class HduHeader:
    """One HDU that holds pixels: its index in the file, header (as a dict) and data shape."""

    index: int
    header: Mapping[str, Any]
    shape: tuple[int, ...]   #: (NAXIS2, NAXIS1) for an image: (ny, nx)


# --- IRAF sections --------------------------------------------------------------------------


def parse_section(text: Any, *, keyword: str = "SECTION", path: str | None = None) -> Section:
    """Parse a 1-based inclusive IRAF section ``[x1:x2,y1:y2]`` into a 0-based :class:`Section`.

    ``[1:1,1:1]`` is the single pixel ``[0:1, 0:1]``. A range written backwards
    (``[1024:1,...]``) gives the same rectangle with ``flip_x`` (or ``flip_y``) set. Indices
    start at 1: a 0 is refused.
    """
    if not isinstance(text, str):
        raise InputError(f"{text!r} is not an IRAF section '[x1:x2,y1:y2]'", path=path, keyword=keyword)
    m = _SECTION.match(text)
    if not m:
        raise InputError(f"{text.strip()!r} is not an IRAF section '[x1:x2,y1:y2]'", path=path, keyword=keyword)
    x1, x2, y1, y2 = (int(g) for g in m.groups())
    if min(x1, x2, y1, y2) < 1:
        raise InputError(f"{text.strip()} has an index below 1 (IRAF sections are 1-based)", path=path, keyword=keyword)
    return Section(
        y0=min(y1, y2) - 1, y1=max(y1, y2), x0=min(x1, x2) - 1, x1=max(x1, x2),
        flip_x=x1 > x2, flip_y=y1 > y2,
    )


def format_section(sec: Section) -> str:
    """The IRAF form of a :class:`Section` (inverse of :func:`parse_section`)."""
    xs = (sec.x1, sec.x0 + 1) if sec.flip_x else (sec.x0 + 1, sec.x1)
    ys = (sec.y1, sec.y0 + 1) if sec.flip_y else (sec.y0 + 1, sec.y1)
    return f"[{xs[0]}:{xs[1]},{ys[0]}:{ys[1]}]"


def check_inside(sec: Section, shape: tuple[int, int], *, text: str, keyword: str, path: str | None) -> None:
    """Refuse a section that does not lie inside an array of ``shape`` (ny, nx)."""
    ny, nx = shape
    if sec.x0 < 0 or sec.y0 < 0 or sec.x1 > nx or sec.y1 > ny:
        raise InputError(f"{text.strip()} lies outside the {nx}x{ny} pixel array", path=path, keyword=keyword)


def _overlap(a: Section, b: Section) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


# --- keyword helpers ------------------------------------------------------------------------


class _Lookup:
    """Keyword lookup with a fallback chain (amplifier header, then primary header)."""

    def __init__(self, path: str, *headers: Mapping[str, Any]):
        self.path = path
        self.headers = headers

    def get(self, key: str, default=None):
        for h in self.headers:
            if key in h:
                val = h[key]
                if isinstance(val, str):
                    val = val.strip()
                    if val == "":
                        continue
                if val is None:
                    continue
                return val
        return default

    def require(self, key: str, what: str = "required keyword"):
        val = self.get(key)
        if val is None:
            raise InputError(f"missing {what}", path=self.path, keyword=key)
        return val

    def number(self, key: str, *, required: bool = True, default=None) -> float | None:
        val = self.require(key) if required else self.get(key)
        if val is None:
            return default
        if isinstance(val, bool):
            raise InputError(f"{val!r} is not a number", path=self.path, keyword=key)
        try:
            num = float(val)
        except (TypeError, ValueError):
            raise InputError(f"{val!r} is not a number", path=self.path, keyword=key) from None
        if not math.isfinite(num):
            raise InputError(f"{val!r} is not a finite number", path=self.path, keyword=key)
        return num

    def integer(self, key: str) -> int:
        val = self.require(key)
        if isinstance(val, bool):
            raise InputError(f"{val!r} is not an integer", path=self.path, keyword=key)
        try:
            num = float(val)
        except (TypeError, ValueError):
            raise InputError(f"{val!r} is not an integer", path=self.path, keyword=key) from None
        if not math.isfinite(num) or num != int(num):
            raise InputError(f"{val!r} is not an integer", path=self.path, keyword=key)
        return int(num)


def normalize_imagetyp(value: Any, path: str | None = None) -> str:
    """'object'/'science' -> 'science', 'bias'/'zero' -> 'bias', 'dark', 'flat'/'domeflat'/'skyflat' -> 'flat'."""
    key = re.sub(r"\s+", " ", str(value).strip().lower())
    try:
        return IMAGETYP_SYNONYMS[key]
    except KeyError:
        raise InputError(
            f"unknown image type {str(value).strip()!r} (expected object/science, bias/zero, dark or flat/domeflat/skyflat)",
            path=path, keyword="IMAGETYP") from None


# --- the whole frame ------------------------------------------------------------------------


def raw_info(path: str, primary: Mapping[str, Any], hdus: Sequence[HduHeader]) -> RawInfo:
    """Validate the headers of one raw file and describe it.

    ``primary`` is the primary header; ``hdus`` the HDUs holding pixels (one per amplifier:
    the primary HDU itself for a one-amplifier file, else the image extensions), in file
    order. Exposure keywords are read from the primary header, then from the first
    amplifier's header (tile-compressed files may keep them there); amplifier keywords from
    the amplifier's header, then the primary header.
    """
    path = str(path)
    if not hdus:
        raise InputError("no image data (neither the primary HDU nor any image extension holds pixels)",
                         path=path, keyword="NAXIS")
    ex = _Lookup(path, primary, hdus[0].header)

    imagetyp = normalize_imagetyp(ex.require("IMAGETYP"), path)
    visit = ex.integer("EXPID")
    if not 0 <= visit < MAX_VISIT:
        raise InputError(f"{visit} is outside [0, {MAX_VISIT})", path=path, keyword="EXPID")
    det_key = "DETECTOR" if ex.get("DETECTOR") is not None else "CCDNUM"
    if ex.get(det_key) is None:
        raise InputError("missing required keyword (or CCDNUM)", path=path, keyword="DETECTOR")
    detector = ex.integer(det_key)
    if not 0 <= detector <= MAX_DETECTOR:
        raise InputError(f"{detector} is outside [0, {MAX_DETECTOR}]", path=path, keyword=det_key)
    exptime = ex.number("EXPTIME")
    if exptime < 0:
        raise InputError(f"{exptime} is negative", path=path, keyword="EXPTIME")
    mjd = _mjd(ex)

    band = None
    if imagetyp in ("science", "flat"):
        band = str(ex.require("FILTER", "required keyword on science and flat frames")).strip()
        if not _BAND.match(band):
            raise InputError(f"{band!r} is not a usable band name (letters, digits, '_', '.', '-')",
                             path=path, keyword="FILTER")

    ra = dec = None
    if imagetyp == "science":
        ra = _coord(ex, "RA", parse_ra, required=True)
        dec = _coord(ex, "DEC", parse_dec, required=True)
    else:  # calibration frames: the pointing is informative only (often the dome's)
        try:
            ra = _coord(ex, "RA", parse_ra, required=False)
            dec = _coord(ex, "DEC", parse_dec, required=False)
        except InputError:
            ra = dec = None

    instrument = str(ex.get("INSTRUME", "")).strip()
    amps = tuple(_amp(path, i, h, primary, single=len(hdus) == 1) for i, h in enumerate(hdus))
    names = [a.name for a in amps]
    if len(set(names)) != len(names):
        amps = tuple(replace(a, name=f"{a.name}_{a.hdu}") for a in amps)
    amps, shape = _assemble(path, amps)
    bitpix = max(_bitpix(path, h) for h in hdus)

    wcs = _wcs(ex, path, shape) if imagetyp == "science" else None
    return RawInfo(
        path=path, imagetyp=imagetyp, exptime=exptime, mjd=mjd, band=band, visit=visit,
        detector=detector, instrument=instrument, ra=ra, dec=dec, shape=shape, amps=amps,
        wcs_header=wcs, bitpix=bitpix,
    )


def _mjd(ex: _Lookup) -> float:
    if ex.get("MJD-OBS") is not None:
        mjd = ex.number("MJD-OBS")
    else:
        date = ex.get("DATE-OBS")
        if date is None or "T" not in str(date):
            raise InputError("missing required keyword (no DATE-OBS with a time either)",
                             path=ex.path, keyword="MJD-OBS")
        from astropy.time import Time

        try:
            mjd = float(Time(str(date), format="isot", scale="utc").mjd)
        except ValueError:
            raise InputError(f"{date!r} is not an ISO date-time", path=ex.path, keyword="DATE-OBS") from None
    if not 0 < mjd < 200_000:
        raise InputError(f"{mjd} is not a plausible MJD", path=ex.path, keyword="MJD-OBS")
    return mjd


def _coord(ex: _Lookup, key: str, parse, required: bool) -> float | None:
    val = ex.require(key, "required keyword on science frames") if required else ex.get(key)
    if val is None:
        return None
    try:
        return parse(val)
    except InputError as exc:
        raise InputError(str(exc), path=ex.path, keyword=key) from None


def _bitpix(path: str, h: HduHeader) -> int:
    hdr = h.header
    bitpix = hdr.get("ZBITPIX", hdr.get("BITPIX"))
    if bitpix not in (16, 32):
        raise InputError(f"unsupported BITPIX {bitpix} (16- or 32-bit integer pixels expected)",
                         path=path, keyword="BITPIX")
    bscale = hdr.get("BSCALE", 1)
    if bscale != 1:
        raise InputError(f"scaled pixels (BSCALE = {bscale}) are not supported", path=path, keyword="BSCALE")
    bzero = hdr.get("BZERO", 0)
    allowed = (0, 32768) if bitpix == 16 else (0,)
    if bzero not in allowed:
        raise InputError(f"BZERO = {bzero} is not supported with BITPIX {bitpix} (allowed: {allowed})",
                         path=path, keyword="BZERO")
    return int(bitpix)


def _amp(path: str, order: int, h: HduHeader, primary: Mapping[str, Any], single: bool) -> AmpInfo:
    """One amplifier's sections and electronics; refusals name the HDU at the end."""
    try:
        return _amp_checked(path, order, h, primary, single)
    except InputError as exc:
        if single and h.index == 0:
            raise
        new = InputError(f"{exc} (HDU {h.index})")
        new.path, new.keyword = exc.path, exc.keyword
        raise new from None


def _amp_checked(path: str, order: int, h: HduHeader, primary: Mapping[str, Any], single: bool) -> AmpInfo:
    hdr = h.header
    where = path
    if len(h.shape) != 2:
        raise InputError(f"amplifier image has {len(h.shape)} axes, 2 expected", path=where, keyword="NAXIS")
    _bitpix(where, h)
    ny, nx = h.shape
    look = _Lookup(where, hdr, primary) if h.index != 0 else _Lookup(where, hdr)

    data_key = "DATASEC" if look.get("DATASEC") is not None else "TRIMSEC"
    data_text = look.get(data_key)
    if data_text is None:
        raise InputError("missing required keyword (or TRIMSEC)", path=where, keyword="DATASEC")
    datasec = parse_section(data_text, keyword=data_key, path=where)
    check_inside(datasec, (ny, nx), text=str(data_text), keyword=data_key, path=where)
    if datasec.flip_x or datasec.flip_y:
        raise InputError(f"{data_text.strip()} runs backwards (only DETSEC may)", path=where, keyword=data_key)
    datasec = Section(datasec.y0, datasec.y1, datasec.x0, datasec.x1)

    bias_text = look.require("BIASSEC")
    biassec = parse_section(bias_text, keyword="BIASSEC", path=where)
    check_inside(biassec, (ny, nx), text=str(bias_text), keyword="BIASSEC", path=where)
    if biassec.flip_x or biassec.flip_y:
        raise InputError(f"{bias_text.strip()} runs backwards (only DETSEC may)", path=where, keyword="BIASSEC")
    biassec = Section(biassec.y0, biassec.y1, biassec.x0, biassec.x1)
    if _overlap(datasec, biassec):
        raise InputError(f"{bias_text.strip()} overlaps {data_key} {data_text.strip()}", path=where, keyword="BIASSEC")

    det_text = look.get("DETSEC")
    if det_text is None:
        if not single:
            raise InputError("missing required keyword (needed when a file has several amplifiers)",
                             path=where, keyword="DETSEC")
        detsec = Section(0, datasec.shape[0], 0, datasec.shape[1])
    else:
        detsec = parse_section(det_text, keyword="DETSEC", path=where)
        if detsec.shape != datasec.shape:
            raise InputError(
                f"{det_text.strip()} is {detsec.shape[1]}x{detsec.shape[0]} but {data_key} "
                f"{data_text.strip()} is {datasec.shape[1]}x{datasec.shape[0]} (binning is not supported)",
                path=where, keyword="DETSEC")

    gain = look.number("GAIN")
    if gain <= 0:
        raise InputError(f"{gain} must be > 0 [e-/ADU]", path=where, keyword="GAIN")
    rdnoise = look.number("RDNOISE")
    if rdnoise < 0:
        raise InputError(f"{rdnoise} must be >= 0 [e-]", path=where, keyword="RDNOISE")
    saturate = look.number("SATURATE")
    if saturate <= 0:
        raise InputError(f"{saturate} must be > 0 [ADU]", path=where, keyword="SATURATE")

    name = str(hdr.get("EXTNAME") or hdr.get("AMPNAME") or f"amp{order}").strip() or f"amp{order}"
    return AmpInfo(name=name, hdu=h.index, datasec=datasec, biassec=biassec, detsec=detsec,
                   gain=gain, rdnoise=rdnoise, saturate=saturate)


def _assemble(path: str, amps: tuple[AmpInfo, ...]) -> tuple[tuple[AmpInfo, ...], tuple[int, int]]:
    """Shift DETSECs so the assembled detector starts at (0, 0); check they tile it exactly."""
    y0 = min(a.detsec.y0 for a in amps)
    x0 = min(a.detsec.x0 for a in amps)
    ny = max(a.detsec.y1 for a in amps) - y0
    nx = max(a.detsec.x1 for a in amps) - x0
    for i, a in enumerate(amps):
        for b in amps[i + 1:]:
            if _overlap(a.detsec, b.detsec):
                raise InputError(f"{format_section(b.detsec)} of {b.name} (HDU {b.hdu}) overlaps "
                                 f"{format_section(a.detsec)} of {a.name} (HDU {a.hdu})", path=path, keyword="DETSEC")
    area = sum(a.detsec.shape[0] * a.detsec.shape[1] for a in amps)
    if area != ny * nx:
        raise InputError(f"the amplifiers' DETSECs cover {area} of the {nx}x{ny} detector pixels (gaps)",
                         path=path, keyword="DETSEC")
    if y0 or x0:
        amps = tuple(replace(a, detsec=replace(a.detsec, y0=a.detsec.y0 - y0, y1=a.detsec.y1 - y0,
                                                x0=a.detsec.x0 - x0, x1=a.detsec.x1 - x0)) for a in amps)
    return amps, (ny, nx)


def _wcs(ex: _Lookup, path: str, shape: tuple[int, int]) -> dict:
    """The approximate TAN WCS of the assembled detector (CD matrix; CDELT/PC accepted)."""
    ctype1 = str(ex.require("CTYPE1", "required keyword (TAN WCS) on science frames"))
    ctype2 = str(ex.require("CTYPE2", "required keyword (TAN WCS) on science frames"))
    if not ctype1.upper().startswith("RA---TAN"):
        raise InputError(f"{ctype1!r} is not a TAN projection in RA ('RA---TAN' expected)", path=path, keyword="CTYPE1")
    if not ctype2.upper().startswith("DEC--TAN"):
        raise InputError(f"{ctype2!r} is not a TAN projection in Dec ('DEC--TAN' expected)", path=path, keyword="CTYPE2")
    wcs: dict[str, Any] = {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN"}
    for key in ("CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2"):
        wcs[key] = ex.number(key)
    if ex.get("CD1_1") is not None or ex.get("CD2_2") is not None:
        for key in ("CD1_1", "CD1_2", "CD2_1", "CD2_2"):
            wcs[key] = ex.number(key, required=key in ("CD1_1", "CD2_2"), default=0.0)
    elif ex.get("CDELT1") is not None:
        c1, c2 = ex.number("CDELT1"), ex.number("CDELT2")
        pc = [[ex.number("PC1_1", required=False, default=1.0), ex.number("PC1_2", required=False, default=0.0)],
              [ex.number("PC2_1", required=False, default=0.0), ex.number("PC2_2", required=False, default=1.0)]]
        wcs.update(CD1_1=c1 * pc[0][0], CD1_2=c1 * pc[0][1], CD2_1=c2 * pc[1][0], CD2_2=c2 * pc[1][1])
    else:
        raise InputError("missing required keyword (TAN WCS: CD matrix or CDELT) on science frames",
                         path=path, keyword="CD1_1")
    det = wcs["CD1_1"] * wcs["CD2_2"] - wcs["CD1_2"] * wcs["CD2_1"]
    if det == 0:
        raise InputError("the CD matrix is singular", path=path, keyword="CD1_1")
    if not -90 <= wcs["CRVAL2"] <= 90:
        raise InputError(f"{wcs['CRVAL2']} is outside [-90, 90] degrees", path=path, keyword="CRVAL2")
    wcs["CRVAL1"] = wcs["CRVAL1"] % 360.0
    wcs["NAXIS1"], wcs["NAXIS2"] = shape[1], shape[0]
    for key in ("RADESYS", "EQUINOX"):
        if ex.get(key) is not None:
            wcs[key] = ex.get(key)
    wcs.setdefault("RADESYS", "ICRS")
    return wcs
