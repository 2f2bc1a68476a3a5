"""Raw FITS frames: header rules (:mod:`.headers`) and the one reader (:mod:`.reader`)."""

from .headers import IMAGETYP_SYNONYMS, parse_section
from .reader import read_header, read_raw

__all__ = ["read_header", "read_raw", "parse_section", "IMAGETYP_SYNONYMS"]
