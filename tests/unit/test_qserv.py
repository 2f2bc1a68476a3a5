"""The Qserv dialect: each Qserv-style query over an imported catalog gives, row for row, the
result of the same question written in plain DuckDB SQL and run by plain duckdb over the same
Parquet files (no minidr functions on that side)."""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from minidr.errors import QueryError
from minidr.query import open_release
from minidr.query.qserv import translate
from minidr.release.importer import import_table
from minidr.repository import Repo

OBJECT_DDL = """
CREATE TABLE `Object` (
  `objectId` bigint(20) NOT NULL COMMENT 'unique id',
  `coord_ra` double NOT NULL COMMENT 'right ascension [deg]',
  `coord_dec` double NOT NULL COMMENT 'declination [deg]',
  `g_psfFlux` double DEFAULT NULL COMMENT 'g PSF flux [nJy]',
  `g_psfFluxErr` double DEFAULT NULL COMMENT 'g PSF flux error [nJy]',
  `r_psfFlux` double DEFAULT NULL COMMENT 'r PSF flux [nJy]',
  `refExtendedness` double DEFAULT NULL,
  `flags` int(11) NOT NULL DEFAULT 0,
  PRIMARY KEY (`objectId`)
) ENGINE=MyISAM DEFAULT CHARSET=latin1;
"""


def _objects(rng):
    n1, n2 = 1500, 400
    ra = np.concatenate([rng.uniform(148.5, 151.5, n1), rng.uniform(-1.0, 1.0, n2) % 360])
    dec = np.concatenate([rng.uniform(0.5, 3.5, n1), rng.uniform(-2.0, 0.0, n2)])
    n = ra.size
    g = rng.lognormal(7, 1.5, n)
    g[rng.random(n) < 0.05] *= -1
    g[:7] = 0.0
    r = rng.lognormal(7, 1.5, n)
    cols = {
        "objectId": np.arange(1, n + 1) * 7 + 1000,
        "coord_ra": ra, "coord_dec": dec, "g_psfFlux": g, "g_psfFluxErr": np.abs(g) * 0.05 + 1,
        "r_psfFlux": r, "refExtendedness": (rng.random(n) < 0.3).astype(float),
        "flags": rng.integers(0, 16, n),
    }
    lines = [",".join(cols)]
    nulls = rng.random(n) < 0.1
    for i in range(n):
        vals = [repr(float(cols[c][i])) if cols[c].dtype.kind == "f" else str(int(cols[c][i])) for c in cols]
        if nulls[i]:
            vals[5] = "\\N"
        lines.append(",".join(vals))
    return "\n".join(lines) + "\n", cols


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qserv")
    rng = np.random.default_rng(42)
    repo = Repo.create(tmp / "repo", partition_rows=150).path
    text, cols = _objects(rng)
    (tmp / "Object.csv").write_text(text)
    (tmp / "Object.sql").write_text(OBJECT_DDL)
    import_table(repo, "QS", "Object", [tmp / "Object.csv"], schema=tmp / "Object.sql")
    n = cols["objectId"].size
    k = rng.integers(1, 5, n)
    oid = np.repeat(cols["objectId"], k)
    m = oid.size
    src = pa.table({
        "sourceId": np.arange(m, dtype=np.int64) * 3 + 11,
        "objectId": oid,
        "visit": rng.integers(100, 110, m),
        "band": np.asarray(["g", "r", "i"])[rng.integers(0, 3, m)],
        "ra": np.repeat(cols["coord_ra"], k) + rng.normal(0, 1e-4, m),
        "decl": np.repeat(cols["coord_dec"], k) + rng.normal(0, 1e-4, m),
        "psfFlux": rng.normal(1000, 300, m),
        "psfFluxErr": rng.uniform(5, 50, m),
        "midpointMjdTai": 60000 + rng.uniform(0, 100, m),
    })
    pq.write_table(src, tmp / "Source.parquet")
    import_table(repo, "QS", "Source", [tmp / "Source.parquet"], partition_by="Object:objectId", id_column="sourceId")
    (tmp / "Visit.csv").write_text("visit,band,expTime,seeing\n" + "".join(
        f"{v},{'gri'[v % 3]},{30 + v % 2 * 15},{0.6 + (v % 5) / 10}\n" for v in range(100, 110)))
    import_table(repo, "QS", "Visit", [tmp / "Visit.csv"])
    rel = repo / "releases" / "QS"
    ref = duckdb.connect()
    for t in ("Object", "Source"):
        ref.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{rel}/{t}/dataset/**/*.parquet')")
    ref.execute(f"CREATE VIEW Visit AS SELECT * FROM read_parquet('{rel}/Visit.parquet')")
    ref.execute("""CREATE MACRO sep(ra1, dec1, ra2, dec2) AS degrees(2 * asin(sqrt(
        pow(sin(radians(dec2 - dec1) / 2), 2) + cos(radians(dec1)) * cos(radians(dec2)) * pow(sin(radians(ra2 - ra1) / 2), 2))))""")
    dr = open_release(repo, "QS")
    yield dr, ref
    dr.close()


def _poly_sql(ra, dec, verts):
    """Plain SQL: point inside a convex counter-clockwise spherical polygon (edge planes)."""
    v = [np.array([math.cos(math.radians(d)) * math.cos(math.radians(r)),
                   math.cos(math.radians(d)) * math.sin(math.radians(r)), math.sin(math.radians(d))])
         for r, d in zip(verts[0::2], verts[1::2])]
    x = f"cos(radians({dec})) * cos(radians({ra}))"
    y = f"cos(radians({dec})) * sin(radians({ra}))"
    z = f"sin(radians({dec}))"
    terms = []
    for a, b in zip(v, v[1:] + v[:1]):
        n = [float(c) for c in np.cross(a, b)]
        terms.append(f"({n[0]!r} * {x} + {n[1]!r} * {y} + {n[2]!r} * {z} >= 0)")
    return " AND ".join(terms)


def _ellipse_sql(ra, dec, ra0, dec0, a, b, pa_deg):
    """Plain SQL: sciSQL's point-in-ellipse test (axes in arcsec, angle east of north)."""
    s, c = math.sin(math.radians(pa_deg)), math.cos(math.radians(pa_deg))
    xne = (f"({math.cos(math.radians(dec0))!r} * sin(radians({dec})) - {math.sin(math.radians(dec0))!r}"
           f" * cos(radians({dec})) * cos(radians({ra} - {ra0})))")
    yne = f"(cos(radians({dec})) * sin(radians({ra} - {ra0})))"
    ma, mi = math.radians(a / 3600), math.radians(b / 3600)
    return (f"(pow({s!r} * {yne} + {c!r} * {xne}, 2) / {ma * ma!r} + pow({c!r} * {yne} - {s!r} * {xne}, 2) / {mi * mi!r} <= 1"
            f" AND sep({ra}, {dec}, {ra0}, {dec0}) < 90)")


POLY = [149.0, 1.0, 150.5, 0.8, 150.8, 2.2, 149.2, 2.5]

# (Qserv query, the same question in plain DuckDB SQL, ordered?)
QUERIES = [
    ("SELECT COUNT(*) FROM `Object`", "SELECT count(*) FROM Object", False),
    ("SELECT COUNT(*) AS n FROM Source WHERE band = 'g'", "SELECT count(*) FROM Source WHERE band = 'g'", False),
    ("SELECT objectId, coord_ra FROM Object WHERE qserv_areaspec_box(149.5, 1.0, 150.2, 2.0)",
     "SELECT objectId, coord_ra FROM Object WHERE coord_ra BETWEEN 149.5 AND 150.2 AND coord_dec BETWEEN 1.0 AND 2.0", False),
    ("SELECT objectId FROM Object WHERE qserv_areaspec_box(359.5, -1.5, 0.5, -0.5)",
     "SELECT objectId FROM Object WHERE (coord_ra >= 359.5 OR coord_ra <= 0.5) AND coord_dec BETWEEN -1.5 AND -0.5", False),
    ("SELECT objectId FROM Object WHERE qserv_areaspec_circle(150.0, 2.0, 0.3) AND flags & 1 = 1",
     "SELECT objectId FROM Object WHERE sep(coord_ra, coord_dec, 150.0, 2.0) <= 0.3 AND (flags & 1) = 1", False),
    ("SELECT COUNT(*) FROM Object WHERE qserv_areaspec_circle(0.0, -1.0, 0.5)",
     "SELECT count(*) FROM Object WHERE sep(coord_ra, coord_dec, 0.0, -1.0) <= 0.5", False),
    ("SELECT objectId FROM Object WHERE qserv_areaspec_ellipse(150.0, 2.0, 1800, 900, 30)",
     f"SELECT objectId FROM Object WHERE {_ellipse_sql('coord_ra', 'coord_dec', 150.0, 2.0, 1800, 900, 30)}", False),
    ("SELECT objectId FROM Object WHERE qserv_areaspec_poly(" + ", ".join(map(str, POLY)) + ")",
     f"SELECT objectId FROM Object WHERE {_poly_sql('coord_ra', 'coord_dec', POLY)}", False),
    ("SELECT objectId FROM Object WHERE scisql_s2PtInCPoly(coord_ra, coord_dec, " + ", ".join(map(str, POLY)) + ") = 1",
     f"SELECT objectId FROM Object WHERE {_poly_sql('coord_ra', 'coord_dec', POLY)}", False),
    ("SELECT objectId FROM Object WHERE scisql_s2PtInBox(coord_ra, coord_dec, 150, 1, 151, 3) = 1 AND coord_dec > 2",
     "SELECT objectId FROM Object WHERE coord_ra BETWEEN 150 AND 151 AND coord_dec BETWEEN 1 AND 3 AND coord_dec > 2", False),
    ("SELECT objectId FROM Object WHERE scisql_s2PtInCircle(coord_ra, coord_dec, 149.5, 1.5, 0.2) = 1",
     "SELECT objectId FROM Object WHERE sep(coord_ra, coord_dec, 149.5, 1.5) <= 0.2", False),
    ("SELECT objectId, scisql_s2PtInEllipse(coord_ra, coord_dec, 150, 2, 3600, 1200, 100) AS inside FROM Object "
     "WHERE qserv_areaspec_box(149, 1, 151, 3)",
     f"SELECT objectId, CAST({_ellipse_sql('coord_ra', 'coord_dec', 150, 2, 3600, 1200, 100)} AS INTEGER) FROM Object "
     "WHERE coord_ra BETWEEN 149 AND 151 AND coord_dec BETWEEN 1 AND 3", False),
    ("SELECT objectId, scisql_angSep(coord_ra, coord_dec, 150, 2) AS d FROM Object "
     "WHERE scisql_angSep(coord_ra, coord_dec, 150, 2) < 0.1 ORDER BY d LIMIT 10",
     "SELECT objectId, sep(coord_ra, coord_dec, 150, 2) AS d FROM Object WHERE sep(coord_ra, coord_dec, 150, 2) < 0.1 "
     "ORDER BY d LIMIT 10", True),
    ("SELECT o1.objectId AS a, o2.objectId AS b FROM Object AS o1, Object AS o2 "
     "WHERE scisql_angSep(o1.coord_ra, o1.coord_dec, o2.coord_ra, o2.coord_dec) < 0.02 AND o1.objectId <> o2.objectId",
     "SELECT o1.objectId, o2.objectId FROM Object o1, Object o2 "
     "WHERE sep(o1.coord_ra, o1.coord_dec, o2.coord_ra, o2.coord_dec) < 0.02 AND o1.objectId <> o2.objectId", False),
    ("SELECT objectId, scisql_nanojanskyToAbMag(g_psfFlux) AS g, scisql_nanojanskyToAbMagSigma(g_psfFlux, g_psfFluxErr) AS ge "
     "FROM Object",
     "SELECT objectId, CASE WHEN g_psfFlux > 0 THEN -2.5 * log10(g_psfFlux) + 31.4 END, "
     "CASE WHEN g_psfFlux > 0 THEN 2.5 / ln(10) * g_psfFluxErr / g_psfFlux END FROM Object", False),
    ("SELECT objectId, SCISQL_FLUXTOABMAG(r_psfFlux * 1e-32) AS r FROM Object",
     "SELECT objectId, CASE WHEN r_psfFlux > 0 THEN -2.5 * log10(r_psfFlux * 1e-32) - 48.6 END FROM Object", False),
    ("SELECT objectId, scisql_fluxToAbMagSigma(g_psfFlux * 1e-32, g_psfFluxErr * 1e-32) FROM Object",
     "SELECT objectId, CASE WHEN g_psfFlux <> 0 THEN 2.5 / ln(10) * g_psfFluxErr / g_psfFlux END FROM Object", False),
    ("SELECT scisql_abMagToNanojansky(20.0), scisql_abMagToFlux(20.0), scisql_nanojanskyToAbMag(NULL), "
     "scisql_s2PtInCircle(NULL, 0, 0, 0, 1), scisql_s2PtInEllipse(1, NULL, 0, 0, 10, 5, 0), scisql_angSep(NULL, 1, 2, 3)",
     "SELECT pow(10, -0.4 * (20.0 - 31.4)), pow(10, -0.4 * (20.0 + 48.6)), NULL, 0, 0, NULL", True),
    ("SELECT objectId, scisql_s2PtInCircle(coord_ra, coord_dec, 150, 2, 0.5) AS c, "
     "scisql_s2PtInBox(coord_ra, coord_dec, 149, 1, 150, 2) AS b FROM Object WHERE objectId < 3000",
     "SELECT objectId, CAST(sep(coord_ra, coord_dec, 150, 2) <= 0.5 AS INTEGER), "
     "CAST(coord_ra BETWEEN 149 AND 150 AND coord_dec BETWEEN 1 AND 2 AS INTEGER) FROM Object WHERE objectId < 3000",
     False),
    ("SELECT objectId FROM Object WHERE scisql_nanojanskyToAbMag(g_psfFlux) < 22.5 AND "
     "scisql_nanojanskyToAbMag(r_psfFlux) - scisql_nanojanskyToAbMag(g_psfFlux) > 0.3",
     "SELECT objectId FROM Object WHERE g_psfFlux > 0 AND r_psfFlux > 0 AND -2.5 * log10(g_psfFlux) + 31.4 < 22.5 "
     "AND (-2.5 * log10(r_psfFlux)) - (-2.5 * log10(g_psfFlux)) > 0.3", False),
    ("SELECT objectId, coord_ra FROM Object ORDER BY coord_ra DESC LIMIT 5",
     "SELECT objectId, coord_ra FROM Object ORDER BY coord_ra DESC LIMIT 5", True),
    ("SELECT objectId FROM Object ORDER BY objectId LIMIT 10, 5",
     "SELECT objectId FROM Object ORDER BY objectId LIMIT 5 OFFSET 10", True),
    ("SELECT objectId, r_psfFlux FROM Object ORDER BY r_psfFlux, objectId LIMIT 8",
     "SELECT objectId, r_psfFlux FROM Object ORDER BY r_psfFlux NULLS FIRST, objectId LIMIT 8", True),
    ("SELECT band, COUNT(*) AS n, AVG(psfFlux) FROM Source GROUP BY band ORDER BY band",
     "SELECT band, count(*), avg(psfFlux) FROM Source GROUP BY band ORDER BY band", True),
    ("SELECT visit, band, COUNT(*) FROM Source GROUP BY visit, band HAVING COUNT(*) > 100 ORDER BY visit, band",
     "SELECT visit, band, count(*) FROM Source GROUP BY visit, band HAVING count(*) > 100 ORDER BY visit, band", True),
    ("SELECT objectId DIV 100 AS bucket, COUNT(*) FROM Object GROUP BY bucket ORDER BY bucket",
     "SELECT CAST(trunc(objectId / 100) AS BIGINT) AS bucket, count(*) FROM Object GROUP BY bucket ORDER BY bucket", True),
    ("SELECT objectId, objectId MOD 7, MOD(objectId, 5), objectId % 3 FROM Object WHERE objectId < 2000",
     "SELECT objectId, objectId % 7, objectId % 5, objectId % 3 FROM Object WHERE objectId < 2000", False),
    ("SELECT objectId, flags | 16, flags ^ 5, flags << 2, flags >> 1, ~flags & 15 FROM Object WHERE flags & 6 <> 0",
     "SELECT objectId, flags | 16, xor(flags, 5), flags << 2, flags >> 1, (~flags) & 15 FROM Object WHERE (flags & 6) <> 0",
     False),
    ("SELECT COUNT(*) FROM Object WHERE r_psfFlux <=> NULL",
     "SELECT count(*) FROM Object WHERE r_psfFlux IS NULL", False),
    ("SELECT COUNT(*) FROM Object WHERE refExtendedness = 1 && (flags = 3 || flags = 5)",
     "SELECT count(*) FROM Object WHERE refExtendedness = 1 AND (flags = 3 OR flags = 5)", False),
    ("SELECT `o`.`objectId`, COUNT(`s`.`sourceId`) AS nsrc FROM `Object` AS `o` JOIN `Source` AS `s` "
     "ON `o`.`objectId` = `s`.`objectId` WHERE qserv_areaspec_circle(150, 2, 0.2) GROUP BY `o`.`objectId`",
     "SELECT o.objectId, count(s.sourceId) FROM Object o JOIN Source s ON o.objectId = s.objectId "
     "WHERE sep(o.coord_ra, o.coord_dec, 150, 2) <= 0.2 GROUP BY o.objectId", False),
    ("SELECT s.sourceId, s.psfFlux / o.r_psfFlux AS ratio FROM Object o, Source s "
     "WHERE o.objectId = s.objectId AND qserv_areaspec_box(150, 2, 150.3, 2.3)",
     "SELECT s.sourceId, s.psfFlux / o.r_psfFlux FROM Object o, Source s WHERE o.objectId = s.objectId "
     "AND o.coord_ra BETWEEN 150 AND 150.3 AND o.coord_dec BETWEEN 2 AND 2.3", False),
    ("SELECT s.objectId, scisql_angSep(s.ra, s.decl, o.coord_ra, o.coord_dec) * 3600 AS sep_arcsec FROM Source s "
     "JOIN Object o USING (objectId) WHERE qserv_areaspec_circle(0, -1, 0.3)",
     "SELECT s.objectId, sep(s.ra, s.decl, o.coord_ra, o.coord_dec) * 3600 FROM Source s JOIN Object o USING (objectId) "
     "WHERE sep(s.coord_ra, s.coord_dec, 0, -1) <= 0.3", False),
    ("SELECT v.band, COUNT(*) FROM Source s JOIN Visit v ON s.visit = v.visit WHERE v.expTime > 40 GROUP BY v.band",
     "SELECT v.band, count(*) FROM Source s JOIN Visit v ON s.visit = v.visit WHERE v.expTime > 40 GROUP BY v.band", False),
    ("SELECT objectId, IF(refExtendedness > 0.5, 'galaxy', 'star') AS kind, IFNULL(r_psfFlux, -1) FROM Object "
     "WHERE objectId IN (1007, 1014, 1021, 1063)",
     "SELECT objectId, CASE WHEN refExtendedness > 0.5 THEN 'galaxy' ELSE 'star' END, coalesce(r_psfFlux, -1) FROM Object "
     "WHERE objectId IN (1007, 1014, 1021, 1063)", False),
    ("SELECT objectId, g_psfFlux / 0, LOG(ABS(r_psfFlux)), LOG10(ABS(r_psfFlux)), POW(2, flags) FROM Object "
     "WHERE objectId BETWEEN 1000 AND 1200",
     "SELECT objectId, NULL, ln(abs(r_psfFlux)), log10(abs(r_psfFlux)), pow(2, flags) FROM Object "
     "WHERE objectId BETWEEN 1000 AND 1200", False),
    ("select max(coord_dec), MIN(coord_dec), Sum(flags), count(DISTINCT flags) FROM Object "
     "WHERE QSERV_AREASPEC_BOX(148, 0, 152, 4)",
     "SELECT max(coord_dec), min(coord_dec), sum(flags), count(DISTINCT flags) FROM Object "
     "WHERE coord_ra BETWEEN 148 AND 152 AND coord_dec BETWEEN 0 AND 4", False),
    ("SELECT o.objectId FROM Object o WHERE o.objectId IN (SELECT objectId FROM Source WHERE psfFlux > 1900) "
     "AND qserv_areaspec_circle(150, 2, 1)",
     "SELECT o.objectId FROM Object o WHERE o.objectId IN (SELECT objectId FROM Source WHERE psfFlux > 1900) "
     "AND sep(o.coord_ra, o.coord_dec, 150, 2) <= 1", False),
]


def _norm(rows):
    out = []
    for r in rows:
        out.append(tuple(round(v, 6) if isinstance(v, float) and math.isfinite(v) else v for v in r))
    return out


def _key(row):
    return tuple((v is None, str(type(v)), v if v is not None else 0) for v in row)


def _same(a, b):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert len(ra) == len(rb)
        for x, y in zip(ra, rb):
            if isinstance(x, float) or isinstance(y, float):
                if x is None or y is None:
                    assert x is None and y is None, (ra, rb)
                elif math.isnan(x) or math.isnan(y):
                    assert math.isnan(x) and math.isnan(y)
                else:
                    assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9), (ra, rb)
            else:
                assert x == y, (ra, rb)


@pytest.mark.parametrize("qserv_sql, duck_sql, ordered", QUERIES, ids=[f"q{i:02d}" for i in range(len(QUERIES))])
def test_qserv_query_equals_plain_duckdb(catalogs, qserv_sql, duck_sql, ordered):
    dr, ref = catalogs
    got = dr.sql(qserv_sql, dialect="qserv", max_rows=10**7)
    want = ref.sql(duck_sql).fetchall()
    rows = list(zip(*[c.to_pylist() for c in got.columns])) if got.num_columns else []
    if not ordered:
        rows = sorted(rows, key=lambda r: _key(_norm([r])[0]))
        want = sorted(want, key=lambda r: _key(_norm([r])[0]))
    assert len(rows) > 0 or len(want) == 0
    _same(rows, want)


def test_suite_is_not_trivial(catalogs):
    dr, ref = catalogs
    assert len(QUERIES) >= 30
    non_empty = sum(1 for _, d, _ in QUERIES if ref.sql(d).fetchall())
    assert non_empty == len(QUERIES)


def test_areaspec_prunes_partitions(catalogs):
    dr, _ = catalogs
    dr.sql("SELECT objectId FROM Object WHERE qserv_areaspec_ellipse(150, 2, 600, 300, 0)", dialect="qserv")
    assert "Object" in dr.last_plan.sql and dr.last_plan.regions
    stats = dr.scan_stats("SELECT COUNT(*) FROM Object WHERE qserv_areaspec_circle(150, 2, 0.05)", dialect="qserv")
    assert stats["files"] < len(dr.catalogs["Object"].files)


@pytest.mark.parametrize("query, message", [
    ("SELECT scisql_s2CPolyToBin(1, 2, 3, 4, 5, 6) FROM Object", "scisql_s2CPolyToBin"),
    ("SELECT objectId FROM Object WHERE flags = 1 OR qserv_areaspec_box(1, 2, 3, 4)", "qserv_areaspec_box"),
    ("SELECT qserv_areaspec_circle(1, 2, 3) FROM Object", "AND term of the WHERE"),
    ("SELECT @myvar FROM Object", "user variables"),
    ("SELECT objectId FROM Object WHERE qserv_areaspec_circle(1, 2)", "takes 3 arguments"),
    ("SELECT scisql_angSep(1, 2, 3) FROM Object", "takes 4 arguments"),
    ("SELECT objectId FROM Object LOCK IN SHARE MODE", "locking"),
    ("DELETE FROM Object", "not allowed"),
])
def test_untranslatable_constructs_are_named(catalogs, query, message):
    dr, _ = catalogs
    with pytest.raises(QueryError, match=message):
        dr.sql(query, dialect="qserv")


def test_translate_is_tree_based():
    sql = translate("SELECT `a` DIV 2, b MOD 3 FROM `T` WHERE c <=> NULL LIMIT 4, 2")
    assert sql == 'SELECT "a" // 2, b % 3 FROM "T" WHERE c IS NOT DISTINCT FROM NULL LIMIT 2 OFFSET 4'
    # a string literal is never rewritten
    assert "scisql_fluxToAbMag(1)" in translate("SELECT 'scisql_fluxToAbMag(1)' AS s")


def test_cli_sql_dialect_qserv(catalogs, capsys):
    from minidr.cli import main

    dr, ref = catalogs
    repo = dr.path.parent.parent
    main(["sql", str(repo), "SELECT COUNT(*) AS n FROM `Object` WHERE qserv_areaspec_box(149.5, 1.0, 150.2, 2.0)",
          "--dialect", "qserv", "--format", "csv", "--release", "QS"])
    out = capsys.readouterr().out.splitlines()
    want = ref.sql("SELECT count(*) FROM Object WHERE coord_ra BETWEEN 149.5 AND 150.2 AND coord_dec BETWEEN 1 AND 2")
    assert out == ["n", str(want.fetchall()[0][0])]
    with pytest.raises(SystemExit) as exc:
        main(["sql", str(repo), "SELECT scisql_s2HtmId(1, 2, 3) FROM Object", "--dialect", "qserv"])
    assert exc.value.code == 2
    assert "scisql_s2HtmId" in capsys.readouterr().err
