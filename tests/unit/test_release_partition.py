"""plan_partitions: adaptive HEALPix partitions that cover every row once and respect max_rows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidr.release.partition import NPIX29, Partition, plan_partitions


def _check_plan(h: np.ndarray, parts: list[Partition], max_rows: int, max_order: int) -> None:
    # cover every row exactly once, in order
    pos = 0
    for p in parts:
        assert p.start == pos and p.stop > p.start
        pos = p.stop
    assert pos == h.size
    prev_hi = -1
    for p in parts:
        lo, hi = p.range29()
        assert lo >= prev_hi  # sorted by order-29 range, disjoint
        prev_hi = hi
        rows = h[p.start:p.stop]
        assert rows.min() >= lo and rows.max() < hi  # rows lie inside their pixel
        assert 0 <= p.order <= max_order
        assert p.n_rows <= max_rows or p.order == max_order
        # coarsest: the parent pixel would hold too many rows
        if p.order > 0:
            shift = 2 * (29 - (p.order - 1))
            parent = p.pixel >> 2
            n_parent = np.count_nonzero((h >> shift) == parent)
            assert n_parent > max_rows
    # no row's pixel left without a partition: implied by the coverage check above


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, NPIX29 - 1), min_size=0, max_size=300),
    st.integers(1, 60),
    st.integers(0, 12),
    st.booleans(),
)
def test_plan_properties(values, max_rows, max_order, clustered):
    h = np.array(values, dtype=np.int64)
    if clustered and h.size:
        # squeeze into one small area so that deep splits happen
        h = (h % (1 << 30)) + (5 << 58)
    h.sort()
    parts = plan_partitions(h, max_rows, max_order)
    _check_plan(h, parts, max_rows, max_order)


def test_plan_all_in_one_pixel_respects_max_order():
    h = np.full(100, 123456789, dtype=np.int64)
    parts = plan_partitions(h, 10, max_order=7)
    assert len(parts) == 1 and parts[0].order == 7 and parts[0].n_rows == 100


def test_plan_small_catalog_stays_at_order_zero():
    h = np.sort(np.array([1 << 58, (1 << 58) + 5, 7 << 58], dtype=np.int64))
    parts = plan_partitions(h, 10)
    assert [(p.order, p.pixel, p.start, p.stop) for p in parts] == [(0, 1, 0, 2), (0, 7, 2, 3)]


def test_plan_empty_and_bad_inputs():
    assert plan_partitions(np.zeros(0, dtype=np.int64), 5) == []
    with pytest.raises(ValueError, match="sorted"):
        plan_partitions(np.array([5, 3], dtype=np.int64), 5)
    with pytest.raises(ValueError, match="max_rows"):
        plan_partitions(np.array([5], dtype=np.int64), 0)
    with pytest.raises(ValueError, match="within"):
        plan_partitions(np.array([NPIX29], dtype=np.int64), 5)


def test_dir_number():
    assert Partition(8, 123456, 0, 1).dir == 120000
    assert Partition(2, 47, 0, 1).dir == 0


def test_sort_keys_healpix_radix_argsort_and_pixel_counts():
    from minidr.release.partition import PixelCounts, argsort_healpix, healpix29
    from minidr.sky.healpix import healpix29 as reference

    rng = np.random.default_rng(5)
    ra = np.concatenate([rng.uniform(-10, 370, 20000), [0.0, 360.0, 359.99999999999994, 180.0]])
    dec = np.concatenate([np.degrees(np.arcsin(rng.uniform(-1, 1, 20000))), [90.0, -90.0, 0.0, 89.9999999]])
    dec[:500] = 90 - rng.uniform(0, 1e-6, 500)
    h = healpix29(ra, dec)
    assert h.dtype == np.int64 and np.array_equal(h, reference(ra, dec))
    assert healpix29(np.zeros(0), np.zeros(0)).size == 0
    for keys in (h, h[:1], h[:0], rng.integers(0, 7, 5000), np.full(10, 3), rng.integers(0, NPIX29, 3000)):
        order, hs = argsort_healpix(keys)
        assert np.array_equal(order, np.argsort(keys, kind="stable")) and np.array_equal(hs, keys[order])
    with pytest.raises(ValueError):
        argsort_healpix(np.array([-1, 2]))
    dense = np.concatenate([h, np.full(1000, h[0]), np.full(300, h[1])])  # counts past 255 (one byte)
    for order in (12, 3, 0):
        c = PixelCounts(order)
        c.add(dense[:7000])
        c.add(dense[7000:])
        pix, cnt = c.result()
        u, n = np.unique(dense >> (2 * (29 - order)), return_counts=True)
        assert np.array_equal(pix, u) and np.array_equal(cnt, n)
