"""rewrite: text in, text out (no files): dialects, read-only checks, pruning and neighbour joins."""

from __future__ import annotations

import numpy as np
import pytest
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st

from minidr.errors import QueryError
from minidr.query.rewrite import TableSpec, const, neighbour_order, translate

SEEN = []


def _source(name):
    def src(lo, hi):
        SEEN.append((name, lo.size))
        return f"read_parquet(['/rel/{name}/part.parquet'])"

    return src


TABLES = {
    "Object": TableSpec("Object", ("_healpix_29", "objectId", "coord_ra", "coord_dec", "g_psfFlux"), "coord_ra", "coord_dec", _source("Object")),
    "Source": TableSpec("Source", ("_healpix_29", "sourceId", "objectId", "ra", "dec", "psfFlux"), "ra", "dec", _source("Source")),
    "ForcedSource": TableSpec("ForcedSource", ("_healpix_29", "objectId", "psfFlux", "coord_ra", "coord_dec"), "coord_ra", "coord_dec", _source("ForcedSource")),
    "Visit": TableSpec("Visit", ("visit", "band", "ra", "dec")),
}


def t(q, dialect="duckdb"):
    return translate(q, dialect, tables=TABLES)


def test_qserv_mysql_forms():
    p = t("SELECT `objectId`, scisql_angSep(coord_ra, coord_dec, 1, 2) AS d FROM Object "
          "WHERE qserv_areaspec_box(1, 2, 3, 4) LIMIT 5, 10", "qserv")
    s = p.sql.upper()
    assert "LIMIT 10 OFFSET 5" in s and "BOX(" in s and "READ_PARQUET" in s
    assert "OBJECT" in {k.upper() for k in p.regions}
    p = t("SELECT objectId FROM Object WHERE scisql_s2PtInCPoly(coord_ra, coord_dec, 0, 0, 1, 0, 1, 1) = 1", "qserv")
    assert "POLYGON(coord_ra, coord_dec, [0, 0, 1, 0, 1, 1])".upper() in p.sql.upper()


def test_adql_forms():
    p = t("SELECT TOP 7 objectId, DISTANCE(POINT('ICRS', coord_ra, coord_dec), POINT('ICRS', 1, 2)) AS d "
          "FROM Object WHERE CONTAINS(POINT('ICRS', coord_ra, coord_dec), CIRCLE('ICRS', 1, 2, 0.5)) = 1", "adql")
    s = p.sql.upper()
    assert "LIMIT 7" in s and "ANG_SEP(" in s and "CONE(" in s and p.regions
    p = t("SELECT objectId FROM Object WHERE CONTAINS(POINT('ICRS', coord_ra, coord_dec), CIRCLE('ICRS', 1, 2, 0.5)) = 0", "adql")
    assert "NOT" in p.sql.upper() and not p.regions  # the complement is not a sky limit
    with pytest.raises(QueryError, match="coordinate system 'GALACTIC'"):
        t("SELECT 1 FROM Object WHERE CONTAINS(POINT('GALACTIC', coord_ra, coord_dec), CIRCLE('ICRS', 1, 2, 3)) = 1", "adql")
    with pytest.raises(QueryError, match="AREA"):
        t("SELECT AREA(CIRCLE('ICRS', 1, 2, 3)) FROM Object", "adql")


def test_pruning_only_on_own_position_columns_and_in_and():
    assert t("SELECT * FROM Object WHERE cone(coord_ra, coord_dec, 1, 2, 0.1) AND g_psfFlux > 0").regions
    assert not t("SELECT * FROM Object WHERE cone(coord_ra, coord_dec, 1, 2, 0.1) OR g_psfFlux > 0").regions
    assert not t("SELECT * FROM Object WHERE cone(g_psfFlux, coord_dec, 1, 2, 0.1)").regions
    assert not t("SELECT * FROM Object WHERE cone(coord_ra, coord_dec, objectId, 2, 0.1)").regions
    assert not t("SELECT * FROM Visit WHERE cone(ra, dec, 1, 2, 0.1)").regions  # flat table
    p = t("SELECT s.sourceId FROM Source s JOIN Object o ON s.objectId = o.objectId "
          "WHERE (cone(s.ra, s.dec, 1, 2, 0.1)) AND box(o.coord_ra, o.coord_dec, 0, 1, 2, 3)")
    assert set(p.regions) == {"s", "o"}
    p = t("SELECT s.sourceId FROM Source s JOIN Object o ON s.objectId = o.objectId AND cone(o.coord_ra, o.coord_dec, 1, 2, 0.1)")
    assert set(p.regions) == {"o"}
    p = t("SELECT s.sourceId FROM Source s LEFT JOIN Object o ON s.objectId = o.objectId AND cone(o.coord_ra, o.coord_dec, 1, 2, 0.1)")
    assert not p.regions  # an outer join's ON must not filter the preserved side
    p = t("SELECT count(*) FROM (SELECT * FROM Object WHERE ang_sep(1, 2, coord_ra, coord_dec) < 5/3600.0) x")
    assert p.regions and '"object"._healpix_29 between' in p.sql.lower()


def test_neighbour_join_pattern():
    p = t("SELECT o1.objectId, o2.objectId FROM Object o1, Object o2 "
          "WHERE ang_sep(o1.coord_ra, o1.coord_dec, o2.coord_ra, o2.coord_dec) < 5/3600")
    (a, b, r, k), = p.neighbour_join
    assert (a, b) == ("o1", "o2") and abs(r - 5 / 3600) < 1e-15 and k == neighbour_order(5 / 3600)
    assert "__hpx_neighbours" in p.sql and "__nb_o1 =" in p.sql.replace('"', "")
    p = t("SELECT * FROM Object o JOIN Source s ON scisql_angSep(o.coord_ra, o.coord_dec, s.ra, s.dec) < 0.001")
    assert p.neighbour_join and "EXCLUDE" in p.sql.upper()
    # outer joins are left alone (the b side would repeat rows)
    assert not t("SELECT * FROM Object o LEFT JOIN Source s ON ang_sep(o.coord_ra, o.coord_dec, s.ra, s.dec) < 0.001").neighbour_join


@settings(max_examples=50, deadline=None)
@given(st.floats(1e-7, 60))
def test_neighbour_order_cells_wider_than_radius(r):
    k = neighbour_order(r)
    pix = np.degrees(np.sqrt(4 * np.pi / (12 * 4**k)))
    assert k == 0 or pix >= 2 * r
    assert 0 <= k <= 20


@settings(max_examples=30, deadline=None)
@given(st.floats(-1e6, 1e6, allow_nan=False), st.floats(-1e6, 1e6, allow_nan=False).filter(lambda x: abs(x) > 1e-3))
def test_const_folding(a, b):
    e = sqlglot.parse_one(f"({a!r}) + ({b!r}) * 2 - -({a!r}) / ({b!r})")
    assert const(e) == pytest.approx(a + b * 2 + a / b, rel=1e-12, abs=1e-9)
    assert const(sqlglot.parse_one("coord_ra + 1")) is None


def test_read_only_refusals_name_the_problem():
    for q, pat in [("DELETE FROM Object", "DELETE"), ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
                   ("SELECT * FROM '/etc/passwd'", "reading files"), ("SELECT 1; SELECT 2", "one statement"),
                   ("SELECT * FROM main.Object", "qualified"), ("", "empty"),
                   ("SELECT getenv('HOME')", "getenv")]:
        with pytest.raises(QueryError, match=pat):
            t(q)
    # CTEs and table functions that read no files are fine
    assert t("WITH x AS (SELECT * FROM Object) SELECT count(*) FROM x, range(3) r").sql


def test_row_cap_is_a_limit():
    assert t("SELECT objectId FROM Object", ).sql.upper().endswith("FROM OBJECT")
    assert translate("SELECT objectId FROM Object", tables=TABLES, limit=11).sql.upper().endswith("LIMIT 11")
    assert translate("SELECT objectId FROM Object LIMIT 3", tables=TABLES, limit=11).sql.upper().endswith("LIMIT 3")
    s = translate("SELECT TOP 50 objectId FROM Object", "adql", tables=TABLES, limit=11).sql.upper()
    assert s.endswith("LIMIT 11")
    s = translate("SELECT 1 FROM Visit UNION ALL SELECT 2 FROM Visit", tables=TABLES, limit=11).sql.upper()
    assert s.endswith("LIMIT 11")


@settings(max_examples=40, deadline=None)
@given(st.floats(0, 360, exclude_max=True), st.one_of(st.floats(-90, 90), st.sampled_from([89.99, -89.99, 41.8, -41.8, 0.0])),
       st.floats(-7, np.log10(30)), st.integers(0, 2**31))
def test_pairs_within_radius_are_in_neighbouring_cells(ra0, dec0, log_r, seed):
    """The neighbour-join premise: a pair closer than r lies in the same or adjacent cells
    at neighbour_order(r), everywhere on the sky (poles, base-pixel corners at |dec| 41.8)."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from cdshealpix import nested

    from minidr.sky.healpix import healpix_index

    r = 10**log_r
    k = neighbour_order(r)
    rng = np.random.default_rng(seed)
    n = 200
    c = SkyCoord(np.full(n, ra0) * u.deg, np.full(n, dec0) * u.deg)
    p = c.directional_offset_by(rng.uniform(0, 360, n) * u.deg, rng.uniform(0, r, n) * 0.999999 * u.deg)
    a = healpix_index(np.full(n, ra0), np.full(n, dec0), k)
    b = healpix_index(p.ra.deg, p.dec.deg, k)
    nb = np.asarray(nested.neighbours(a.astype(np.uint64), k), dtype=np.int64)
    assert np.all((nb == b[:, None]).any(axis=1))
