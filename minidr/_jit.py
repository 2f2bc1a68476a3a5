"""The one numba decorator of minidr: caching and math policy are the same everywhere.

Kernels live in ``*/kernels.py`` modules and use ``@njit`` (or ``@njit(parallel=True)``)
from here. ``NUMBA_DISABLE_JIT=1`` runs them as plain Python for coverage and debugging.
"""

from __future__ import annotations

import os

# numba's OpenMP threading layer (libgomp) lets idle worker threads spin between parallel
# kernels: on a shared or busy machine (and with --jobs N worker processes) that burns CPU
# the other threads need. Sleeping instead costs a futex wake per parallel region.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402

_DEFAULTS = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")


def njit(func=None, **options):
    """``numba.njit`` with minidr's defaults (cache, nogil, no fastmath, numpy error model)."""
    opts = {**_DEFAULTS, **options}
    if func is None:
        return lambda f: numba.njit(**opts)(f)
    return numba.njit(**opts)(func)


prange = numba.prange


def set_threads(n: int | None) -> None:
    """Set the number of threads used by ``parallel=True`` kernels (None: all cores)."""
    if n is None:
        n = numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
