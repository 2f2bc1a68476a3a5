"""Parse sky coordinates as users and cameras write them: decimal degrees or sexagesimal."""

from __future__ import annotations

import re

from ..errors import InputError

_SEXA = re.compile(r"^\s*([+-]?)\s*(\d+(?:\.\d*)?)[\s:hd°]+(\d+(?:\.\d*)?)[\s:m']+(\d+(?:\.\d*)?)[s\"]?\s*$")


def _parse(value, hours: bool, what: str) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    m = _SEXA.match(text)
    if not m:
        raise InputError(f"cannot parse {what} {text!r} (decimal degrees or sexagesimal expected)")
    sign = -1.0 if m.group(1) == "-" else 1.0
    a, b, c = (float(m.group(i)) for i in (2, 3, 4))
    if b >= 60 or c >= 60:
        raise InputError(f"cannot parse {what} {text!r}: minutes and seconds must be < 60")
    val = sign * (a + b / 60.0 + c / 3600.0)
    return val * 15.0 if hours else val


def parse_ra(value) -> float:
    """RA in degrees from decimal degrees (``153.19``) or sexagesimal hours (``10:12:45.3``)."""
    ra = _parse(value, hours=True, what="RA")
    if not 0.0 <= ra <= 360.0:
        raise InputError(f"RA {value!r} is outside [0, 360] degrees")
    return ra % 360.0


def parse_dec(value) -> float:
    """Dec in degrees from decimal degrees or sexagesimal degrees (``+02:03:04``)."""
    dec = _parse(value, hours=False, what="Dec")
    if not -90.0 <= dec <= 90.0:
        raise InputError(f"Dec {value!r} is outside [-90, 90] degrees")
    return dec
