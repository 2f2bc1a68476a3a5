"""query.kernels against slow plain-numpy copies: the galloping search and the xmatch kernel."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from minidr.query import kernels as QK
from minidr.sky.regions import ang_sep


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-50, 50), max_size=300), st.integers(-60, 60), st.integers(-10, 400))
def test_lower_bound_from_equals_searchsorted(values, value, hint):
    a = np.sort(np.asarray(values, dtype=np.int64))
    assert QK.lower_bound_from(a, value, hint) == np.searchsorted(a, value, side="left")


def _nearest_slow(cat_cell, cat_ra, cat_dec, user_cells, user_ra, user_dec, radius):
    """Plain numpy: every catalogue row of every listed cell, nearest within radius, ties to
    the lower index."""
    best = np.full(user_ra.size, -1, dtype=np.int64)
    sep = np.full(user_ra.size, np.nan)
    for i in range(user_ra.size):
        cand = np.flatnonzero(np.isin(cat_cell, user_cells[i][user_cells[i] >= 0]))
        if cand.size == 0:
            continue
        d = ang_sep(cat_ra[cand], cat_dec[cand], user_ra[i], user_dec[i])
        ok = d <= radius
        if ok.any():
            j = cand[ok][np.argmin(d[ok])]  # argmin: first (lowest index) of equal minima
            best[i], sep[i] = j, d[ok].min()
    return best, sep


def test_nearest_in_cells_equals_slow_copy():
    """More user rows than one CHUNK (several threads' runs), sorted and shuffled, the
    catalogue whole or in pieces, with duplicates in it (ties go to the lower index) and
    empty cells."""
    rng = np.random.default_rng(3)
    n, m, radius = 4000, 3 * QK.CHUNK + 17, 0.3
    cat_cell = np.sort(rng.integers(0, 500, n))
    # positions: a cell c sits at ra = c / 10 (+ jitter), dec in a thin band
    cat_ra = cat_cell / 10.0 + rng.uniform(0, 0.1, n)
    cat_dec = rng.uniform(-0.2, 0.2, n)
    cat_ra[5], cat_dec[5] = cat_ra[4], cat_dec[4]  # an exact duplicate
    cat_cell[5] = cat_cell[4]
    ucell = rng.integers(-1, 520, m)
    user_cells = np.stack([ucell - 1, ucell, ucell + 1], axis=1)
    user_cells[rng.random(m) < 0.1, 0] = -1
    user_ra = np.clip(ucell, 0, None) / 10.0 + rng.uniform(0, 0.1, m)
    user_dec = rng.uniform(-0.3, 0.3, m)
    user_ra[0], user_dec[0], user_cells[0] = cat_ra[4], cat_dec[4], [cat_cell[4]] * 3
    want = _nearest_slow(cat_cell, cat_ra, cat_dec, user_cells, user_ra, user_dec, radius)
    for order in (np.argsort(ucell, kind="stable"), rng.permutation(m)):
        # the catalogue in one piece, and in three pieces given out of order
        for cuts in ([0, n], [2000, n, 0, 1000, 1000, 2000]):
            best, best_h, sep = np.full(m, -1), np.full(m, 2.0), np.full(m, np.nan)
            for a, b in zip(cuts[::2], cuts[1::2]):
                QK.nearest_in_cells(cat_cell[a:b], cat_ra[a:b], cat_dec[a:b], a, order, user_cells, user_ra,
                                    user_dec, radius, best, best_h, sep)
            np.testing.assert_array_equal(best, want[0])
            np.testing.assert_allclose(sep, want[1], rtol=0, atol=1e-12)
    assert want[0][0] == 4 and (want[0] >= 0).sum() > m // 3 and (want[0] < 0).sum() > 10

