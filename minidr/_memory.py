"""Process memory housekeeping."""

from __future__ import annotations

import ctypes
import ctypes.util


def trim_heap() -> None:
    """Give the free pages of the C heap back to the system (glibc's ``malloc_trim``; nothing
    elsewhere): numpy arrays freed in the middle of the heap stay resident otherwise."""
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or None).malloc_trim(0)
    except (OSError, AttributeError):
        pass
