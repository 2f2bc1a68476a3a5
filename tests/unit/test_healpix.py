import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from minidr.sky.healpix import degrade, healpix29, healpix_index, pixel_range29


@given(st.floats(0, 359.999), st.floats(-89.999, 89.999), st.integers(0, 12))
def test_order29_index_degrades_to_coarse_index(ra, dec, order):
    h29 = healpix29([ra], [dec])
    assert degrade(h29, order)[0] == healpix_index([ra], [dec], order)[0]
    lo, hi = pixel_range29(order, degrade(h29, order))
    assert lo[0] <= h29[0] < hi[0]


def test_known_values():
    # order 0 has 12 base pixels; the north pole lies in one of the first four
    assert healpix_index([0.0], [90.0], 0)[0] in (0, 1, 2, 3)
    assert healpix_index([0.0], [-90.0], 0)[0] in (8, 9, 10, 11)
    assert healpix29([360.0], [0.0])[0] == healpix29([0.0], [0.0])[0]
    assert healpix29(np.zeros(0), np.zeros(0)).dtype == np.int64
