"""The Qserv dialect: MySQL-flavoured SQL as Qserv users write it, translated to DuckDB SQL.

The query is read by sqlglot's MySQL reader (backticks, ``<=>``, ``DIV``, ``MOD``, ``XOR``,
``&&``/``||``, bit operators, ``LIMIT offset, count``, case-insensitive function names) and
generated as DuckDB SQL by sqlglot, which keeps MySQL's meaning where the two differ
(``x / 0`` is NULL, NULLs sort first, ``LOG(x)`` is the natural log, ``^`` is XOR). This
module adds, as tree transforms (never text substitution):

* Qserv's area restrictors in WHERE: ``qserv_areaspec_box/circle`` (handed to
  :mod:`minidr.query.rewrite`, which prunes partitions) and ``qserv_areaspec_ellipse/poly``
  (turned here into a bounding ``cone`` for pruning plus the exact test). As in Qserv they
  must be AND terms of the WHERE clause; anywhere else is a QueryError.
* sciSQL functions with sciSQL's argument orders, units and NULL behaviour:
  ``scisql_s2PtInEllipse`` (axes in arcsec, position angle east of north in deg; a NULL
  argument gives 0), ``scisql_fluxToAbMag[Sigma]`` (erg/s/cm2/Hz), ``scisql_nanojanskyToAbMag[Sigma]``
  (nJy), ``scisql_abMagToFlux[Sigma]``, ``scisql_abMagToNanojansky[Sigma]`` (NULL for NULL,
  NaN, infinite, and for fluxes <= 0 where sciSQL says so). ``scisql_angSep``,
  ``scisql_s2PtInBox/Circle/CPoly`` are the release's own functions (degrees throughout).
* Refusals naming the construct: other sciSQL functions, user variables (``@v``),
  ``SQL_CALC_FOUND_ROWS``-style modifiers, locking reads, anything sqlglot cannot render in
  DuckDB.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, UnsupportedError

from ..errors import QueryError
from .rewrite import TableSpec, _base_tables, _conjuncts, const, parse

LOG10E_2_5 = 1.0857362047581294  # 2.5 / ln(10)

# name (upper case) -> (arity, DuckDB template over the placeholders a0, a1, ...)
_FIN = "isfinite(CAST({x} AS DOUBLE))"
_PHOTOMETRY = {
    "SCISQL_FLUXTOABMAG": (1, f"CASE WHEN {_FIN.format(x='a0')} AND a0 > 0 THEN -2.5 * log10(a0) - 48.6 END"),
    "SCISQL_FLUXTOABMAGSIGMA": (2, f"CASE WHEN {_FIN.format(x='a0')} AND {_FIN.format(x='a1')} AND a0 <> 0 "
                                   f"THEN {LOG10E_2_5!r} * a1 / a0 END"),
    "SCISQL_NANOJANSKYTOABMAG": (1, f"CASE WHEN {_FIN.format(x='a0')} AND a0 > 0 THEN -2.5 * log10(a0) + 31.4 END"),
    "SCISQL_NANOJANSKYTOABMAGSIGMA": (2, f"CASE WHEN {_FIN.format(x='a0')} AND {_FIN.format(x='a1')} AND a0 > 0 "
                                         f"AND a1 >= 0 THEN {LOG10E_2_5!r} * a1 / a0 END"),
    "SCISQL_ABMAGTOFLUX": (1, f"CASE WHEN {_FIN.format(x='a0')} THEN power(10.0, -0.4 * (a0 + 48.6)) END"),
    "SCISQL_ABMAGTOFLUXSIGMA": (2, f"CASE WHEN {_FIN.format(x='a0')} AND {_FIN.format(x='a1')} "
                                   f"THEN a1 * power(10.0, -0.4 * (a0 + 48.6)) / {LOG10E_2_5!r} END"),
    "SCISQL_ABMAGTONANOJANSKY": (1, f"CASE WHEN {_FIN.format(x='a0')} THEN power(10.0, -0.4 * (a0 - 31.4)) END"),
    "SCISQL_ABMAGTONANOJANSKYSIGMA": (2, f"CASE WHEN {_FIN.format(x='a0')} AND {_FIN.format(x='a1')} "
                                         f"THEN a1 * power(10.0, -0.4 * (a0 - 31.4)) / {LOG10E_2_5!r} END"),
}
# point (a0, a1) in the ellipse centred on (a2, a3), semi-axes a4 >= a5 [arcsec], position
# angle a6 [deg] east of north: sciSQL's test in the (north, east) plane at the centre, and
# the point on the centre's hemisphere
_ELLIPSE = (
    "COALESCE(CAST("
    "power(sin(radians(a6)) * (cos(radians(a1)) * sin(radians(a0 - a2)))"
    " + cos(radians(a6)) * (cos(radians(a3)) * sin(radians(a1)) - sin(radians(a3)) * cos(radians(a1))"
    " * cos(radians(a0 - a2))), 2) / power(radians(a4 / 3600.0), 2)"
    " + power(cos(radians(a6)) * (cos(radians(a1)) * sin(radians(a0 - a2)))"
    " - sin(radians(a6)) * (cos(radians(a3)) * sin(radians(a1)) - sin(radians(a3)) * cos(radians(a1))"
    " * cos(radians(a0 - a2))), 2) / power(radians(a5 / 3600.0), 2) <= 1"
    " AND sin(radians(a1)) * sin(radians(a3)) + cos(radians(a1)) * cos(radians(a3)) * cos(radians(a0 - a2)) > 0"
    " AS INTEGER), 0)"
)
_SPATIAL = {"SCISQL_ANGSEP": 4, "SCISQL_S2PTINBOX": 6, "SCISQL_S2PTINCIRCLE": 5, "SCISQL_S2PTINELLIPSE": 7}
SUPPORTED_SCISQL = sorted(
    ["scisql_angSep", "scisql_s2PtInBox", "scisql_s2PtInCircle", "scisql_s2PtInEllipse", "scisql_s2PtInCPoly",
     "scisql_fluxToAbMag", "scisql_fluxToAbMagSigma", "scisql_nanojanskyToAbMag", "scisql_nanojanskyToAbMagSigma",
     "scisql_abMagToFlux", "scisql_abMagToFluxSigma", "scisql_abMagToNanojansky", "scisql_abMagToNanojanskySigma"]
)
_AREASPEC = {"QSERV_AREASPEC_BOX": 4, "QSERV_AREASPEC_CIRCLE": 3, "QSERV_AREASPEC_ELLIPSE": 5,
             "QSERV_AREASPEC_POLY": -1}


def _name(node) -> str | None:
    return str(node.this).upper() if isinstance(node, exp.Anonymous) else None


def _template(text: str, args: list[exp.Expression]) -> exp.Expression:
    """Parse a DuckDB template once and put copies of ``args`` in place of a0, a1, ..."""
    tree = sqlglot.parse_one(text, read="duckdb")
    slots = {f"a{i}": a for i, a in enumerate(args)}

    def put(node):
        if isinstance(node, exp.Column) and not node.table and node.name in slots:
            return exp.Paren(this=slots[node.name].copy())
        return node

    return tree.transform(put)


def _refuse_unsupported(stmt: exp.Expression) -> None:
    for node in stmt.walk():
        if isinstance(node, exp.Parameter) or isinstance(node, exp.SessionParameter):
            raise QueryError(f"user variables ({node.sql(dialect='mysql')}) are not supported in the qserv dialect")
        if isinstance(node, exp.Select):
            mods = node.args.get("operation_modifiers")
            if mods:
                words = " ".join(m.sql() for m in mods)
                raise QueryError(f"SELECT modifier {words} is not supported in the qserv dialect")
            if node.args.get("locks"):
                raise QueryError("locking reads (FOR UPDATE / LOCK IN SHARE MODE) are not supported: a release is read-only")
        name = _name(node)
        if name and name.startswith("SCISQL_") and name not in _PHOTOMETRY and name not in _SPATIAL \
                and name != "SCISQL_S2PTINCPOLY":
            raise QueryError(f"sciSQL function {node.this}() is not supported; supported: {', '.join(SUPPORTED_SCISQL)}")
        if name and name.startswith("QSERV_") and name not in _AREASPEC:
            raise QueryError(f"Qserv function {node.this}() is not supported; area restrictors: "
                             "qserv_areaspec_box, qserv_areaspec_circle, qserv_areaspec_ellipse, qserv_areaspec_poly")


def _check_arity(node: exp.Anonymous, n: int) -> list[exp.Expression]:
    args = list(node.expressions)
    if len(args) != n:
        raise QueryError(f"{node.this}() takes {n} arguments, got {len(args)}")
    return args


def _areaspecs(stmt: exp.Expression, tables: dict[str, TableSpec]) -> None:
    """qserv_areaspec_ellipse/poly -> cone + exact test on the FROM table's position; every
    qserv_areaspec_* must be an AND term of a WHERE clause."""
    ctes = {c.alias_or_name.lower() for c in stmt.find_all(exp.CTE)}
    for node in list(stmt.walk()):
        name = _name(node)
        if name not in _AREASPEC:
            continue
        term = node.parent if isinstance(node.parent, exp.EQ) and const(node.parent.expression) == 1.0 else node
        where = term.find_ancestor(exp.Where)
        select = term.find_ancestor(exp.Select)
        if where is None or select is None or select.args.get("where") is not where or not any(
                t is term for t in _conjuncts(where)):
            raise QueryError(f"{node.this}() must be an AND term of the WHERE clause (as in Qserv)")
        n = _AREASPEC[name]
        args = list(node.expressions)
        if n >= 0 and len(args) != n:
            raise QueryError(f"{node.this}() takes {n} arguments, got {len(args)}")
        if any(const(a) is None for a in args):
            raise QueryError(f"{node.this}() takes constant numbers")
        if name in ("QSERV_AREASPEC_BOX", "QSERV_AREASPEC_CIRCLE"):
            continue  # minidr.query.rewrite turns these into box/cone with partition pruning
        pos = [(a, s) for a, (t, s) in _base_tables(select, tables, ctes).items() if s.ra]
        if not pos:
            raise QueryError(f"{node.this}() needs a table with positions in FROM")
        alias, spec = pos[0]
        ra, dec = exp.column(spec.ra, table=alias), exp.column(spec.dec, table=alias)
        if name == "QSERV_AREASPEC_POLY":
            if len(args) < 6 or len(args) % 2:
                raise QueryError(f"{node.this}(ra1, dec1, ra2, dec2, ra3, dec3, ...) needs >= 3 vertices")
            repl = exp.Anonymous(this="polygon", expressions=[ra, dec, exp.Array(expressions=args)])
        else:
            ra0, dec0, smaj, smin, pa = args
            if not 0 <= const(smin) <= const(smaj) <= 36000:
                raise QueryError(f"{node.this}(): need 0 <= semi-minor <= semi-major <= 36000 arcsec")
            repl = exp.and_(
                _cone(ra, dec, ra0, dec0, smaj),
                exp.EQ(this=_template(_ELLIPSE, [ra, dec, ra0, dec0, smaj, smin, pa]), expression=exp.Literal.number(1)),
            )
        term.replace(exp.Paren(this=repl) if isinstance(repl, exp.And) else repl)


def _cone(ra, dec, ra0, dec0, smaj_arcsec) -> exp.Expression:
    r = exp.Div(this=exp.Paren(this=smaj_arcsec.copy()), expression=exp.Literal.number("3600.0"))
    return exp.Anonymous(this="cone", expressions=[ra.copy(), dec.copy(), ra0.copy(), dec0.copy(), r])


def _functions(stmt: exp.Expression) -> exp.Expression:
    """sciSQL photometry and ellipse functions -> DuckDB expressions; an ellipse test that is a
    WHERE term with a constant ellipse also gets its bounding cone (for partition pruning)."""
    for node in list(stmt.walk()):
        name = _name(node)
        if name in _SPATIAL:
            _check_arity(node, _SPATIAL[name])
        if name != "SCISQL_S2PTINELLIPSE":
            continue
        args = list(node.expressions)
        term = node.parent if isinstance(node.parent, exp.EQ) and const(node.parent.expression) == 1.0 else None
        where = node.find_ancestor(exp.Where)
        new = _template(_ELLIPSE, args)
        if (term is not None and where is not None and any(t is term for t in _conjuncts(where))
                and all(const(a) is not None for a in args[2:]) and all(isinstance(a, exp.Column) for a in args[:2])):
            term.replace(exp.Paren(this=exp.and_(_cone(*args[:5]), exp.EQ(this=new, expression=exp.Literal.number(1)))))
        else:
            node.replace(new)

    # sciSQL's point-in-region functions give 0, not NULL, for a NULL argument; "= 1" tests
    # (the form partition pruning recognises) select the same rows either way
    for node in list(stmt.walk()):
        if _name(node) in ("SCISQL_S2PTINCIRCLE", "SCISQL_S2PTINBOX", "SCISQL_S2PTINCPOLY"):
            if isinstance(node.parent, exp.EQ) and const(node.parent.expression) == 1.0:
                continue
            node.replace(exp.Coalesce(this=node.copy(), expressions=[exp.Literal.number(0)]))

    def photometry(node):
        name = _name(node)
        if name in _PHOTOMETRY:
            n, text = _PHOTOMETRY[name]
            return exp.Paren(this=_template(text, _check_arity(node, n)))
        return node

    return stmt.transform(photometry, copy=False)


def to_duckdb(stmt: exp.Expression, tables: dict[str, TableSpec]) -> exp.Expression:
    """The Qserv passes over a query parsed by the MySQL reader (see the module doc).

    Called by :func:`minidr.query.rewrite.translate` for ``dialect="qserv"`` before its own
    scisql/areaspec, pruning and neighbour-join passes; the tree is then generated as DuckDB SQL.
    """
    _refuse_unsupported(stmt)
    _areaspecs(stmt, tables)
    stmt = _functions(stmt)
    try:
        stmt.sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as exc:
        raise QueryError(f"cannot translate to DuckDB: {str(exc).splitlines()[0]}") from None
    return stmt


def translate(query: str, tables: dict[str, TableSpec] | None = None) -> str:
    """Qserv SQL text -> DuckDB SQL text (without the release's partition pruning)."""
    stmt = parse(query, "qserv")
    return to_duckdb(stmt, tables or {}).sql(dialect="duckdb")


__all__ = ["to_duckdb", "translate", "SUPPORTED_SCISQL"]
