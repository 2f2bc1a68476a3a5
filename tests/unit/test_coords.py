import pytest
from hypothesis import given
from hypothesis import strategies as st

from minidr.errors import InputError
from minidr.sky.coords import parse_dec, parse_ra


def test_sexagesimal_examples():
    assert parse_ra("10:12:45.3") == pytest.approx(153.18875)
    assert parse_dec("+02:03:04") == pytest.approx(2 + 3 / 60 + 4 / 3600)
    assert parse_dec("-00:30:00") == pytest.approx(-0.5)
    assert parse_ra("10h12m45.3s") == pytest.approx(153.18875)
    assert parse_ra("153.2") == 153.2


@given(st.integers(0, 23), st.integers(0, 59), st.floats(0, 59.999, allow_nan=False))
def test_ra_hms_round_trip(h, m, s):
    assert parse_ra(f"{h:02d}:{m:02d}:{s:06.3f}") == pytest.approx(15 * (h + m / 60 + round(s, 3) / 3600), abs=1e-9)


@given(st.sampled_from(["+", "-"]), st.integers(0, 89), st.integers(0, 59), st.floats(0, 59.99, allow_nan=False))
def test_dec_dms_sign_applies_to_whole_value(sign, d, m, s):
    val = parse_dec(f"{sign}{d:02d}:{m:02d}:{s:05.2f}")
    expect = d + m / 60 + round(s, 2) / 3600
    assert val == pytest.approx(-expect if sign == "-" else expect, abs=1e-9)


@pytest.mark.parametrize("bad", ["abc", "12:61:00", "400", "-1"])
def test_bad_ra_is_refused(bad):
    with pytest.raises(InputError, match="RA"):
        parse_ra(bad)


def test_bad_dec_is_refused():
    with pytest.raises(InputError, match="Dec"):
        parse_dec("+91:00:00")
