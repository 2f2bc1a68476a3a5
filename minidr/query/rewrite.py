"""SQL text in, DuckDB SQL text out: safety checks, dialects, sky pruning, neighbour joins.

The passes, in order (each one a function below, so a fuller Qserv dialect can slot in):

1. ``parse``: one statement, read with sqlglot (DuckDB SQL; ADQL through the T-SQL reader,
   which knows ``TOP n``; Qserv through the MySQL reader: backticks, ``LIMIT a, b``).
2. ``check_read_only``: only queries (SELECT/UNION/...), no table functions or file paths,
   no table that is not a release table or a CTE of the query.
3. ``adql_to_duckdb`` (adql only): CONTAINS/POINT/CIRCLE/BOX/POLYGON/DISTANCE -> functions
   of ``sql/functions.sql``; any other ADQL geometry is refused by name.
4. ``scisql_to_duckdb`` (every dialect): variadic ``scisql_s2PtInCPoly`` -> ``polygon``,
   ``qserv_areaspec_circle/box`` -> ``cone``/``box`` on the FROM table's position columns.
5. ``prune``: a WHERE conjunct that limits a table's own position columns to a constant
   region (cone, box, polygon, ang_sep < r and their scisql forms) replaces that table by a
   read of only the partition files that overlap the region, and adds ``_healpix_29``
   range predicates so DuckDB skips row groups by their statistics.
6. ``neighbour_join``: ``ang_sep(a.ra, a.dec, b.ra, b.dec) < r`` between two positional
   tables becomes an equi-join on HEALPix cells at an order whose cells are wider than
   ``r`` (each row of ``b`` joined through its cell and the 8 neighbours), then the exact test.
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from ..errors import InputError, QueryError
from ..sky.regions import _PIX0_DEG, Box, Cone, Polygon, Region, coarsen_ranges

READERS = {"duckdb": "duckdb", "adql": "tsql", "qserv": "mysql"}
MAX_RANGES = 64  # _healpix_29 range predicates per pruned table
_PLACEHOLDER = "__minidr_{}_{}"  # (per-translation random token, counter): users cannot guess it


@dataclass(frozen=True)
class TableSpec:
    """What the rewriter knows of a release table (filled by the engine).

    ``source(lo, hi)`` returns SQL text of a FROM item reading only the partitions that
    overlap the order-29 ranges [lo, hi), or None when pruning is not possible.
    ``narrow(lo, hi)``, when given, widens those ranges to the ``_healpix_29`` spans of the
    row groups they touch (a superset with far fewer ranges: cheaper to test per row).
    """

    name: str
    columns: tuple[str, ...]
    ra: str | None = None
    dec: str | None = None
    source: Callable[[np.ndarray, np.ndarray], str | None] | None = None
    narrow: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None


@dataclass
class Plan:
    """The translated query and what the rewriter did to it."""

    sql: str
    regions: dict[str, Region] = field(default_factory=dict)  # alias -> region used to prune
    sources: dict[str, str] = field(default_factory=dict)  # alias -> FROM text used instead of the view
    neighbour_join: list[tuple[str, str, float, int]] = field(default_factory=list)  # (a, b, radius, order)
    lineage: dict[str, tuple[str, str]] = field(default_factory=dict)  # output name -> (table, column)
    token: str = field(default_factory=lambda: secrets.token_hex(6))


# -- 1. parse ---------------------------------------------------------------------------------


def parse(query: str, dialect: str = "duckdb") -> exp.Expression:
    """One statement of ``dialect`` (duckdb | adql | qserv) as a sqlglot tree."""
    if dialect not in READERS:
        raise QueryError(f"unknown dialect {dialect!r}; use one of: {', '.join(READERS)}")
    if not query or not query.strip():
        raise QueryError("empty query")
    try:
        statements = [s for s in sqlglot.parse(query, read=READERS[dialect]) if s is not None]
    except (ParseError, TokenError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else "syntax error"
        raise QueryError(f"cannot parse {dialect} SQL: {_strip_ansi(msg)}") from None
    if len(statements) != 1:
        raise QueryError(f"one statement per query, got {len(statements)}")
    return statements[0]


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


# -- 2. read-only checks ----------------------------------------------------------------------

_FORBIDDEN_NODES = tuple(
    getattr(exp, n)
    for n in (
        "Insert", "Update", "Delete", "Create", "Drop", "Alter", "Copy", "Attach", "Detach", "Install",
        "Set", "Pragma", "Command", "Into", "Merge", "Use", "LoadData", "Transaction", "Commit", "Rollback",
        "Export", "Kill", "Grant", "Revoke", "Cache", "Uncache", "Refresh", "Analyze", "TruncateTable",
        "Load",
    )
    if hasattr(exp, n)
)
_ALLOWED_TABLE_FUNCS = {"unnest", "range", "generate_series", "generateseries", "explode"}
_FORBIDDEN_FUNC = re.compile(
    r"^(read_\w*|glob|\w*_scan|scan_\w*|query|query_table|sniff_csv|parquet_\w*|getenv|current_setting"
    r"|duckdb_\w*|pragma_\w*|which_secret|load_\w*|install_\w*|sql_auto_complete|icu_\w*|\w*_metadata"
    r"|readcsv|readparquet|readjson|__hpx_\w*)$",
    re.I,
)


def _func_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.this)
    return node.sql_name()


def check_read_only(stmt: exp.Expression, tables: dict[str, TableSpec]) -> None:
    """Refuse anything but a read-only query of the release tables (QueryError)."""
    if not isinstance(stmt, exp.Query):
        kind = stmt.key.upper() if hasattr(stmt, "key") else type(stmt).__name__
        raise QueryError(f"{kind} statements are not allowed: a release is read-only (only SELECT queries)")
    tables_seen, funcs, ctes = [], [], set()
    for node in stmt.walk():
        if isinstance(node, _FORBIDDEN_NODES):
            what = "SELECT ... INTO" if isinstance(node, exp.Into) else node.key.upper()
            raise QueryError(f"{what} is not allowed: a release is read-only (only SELECT queries)")
        if isinstance(node, exp.Table):
            tables_seen.append(node)
        elif isinstance(node, exp.CTE):
            ctes.add(node.alias_or_name.lower())
        if isinstance(node, exp.Func):
            funcs.append(node)
    known = {k.lower() for k in tables}
    for tbl in tables_seen:
        this = tbl.this
        if isinstance(this, exp.Func):
            name = _func_name(this).lower()
            if name not in _ALLOWED_TABLE_FUNCS:
                raise QueryError(
                    f"table function {name}() is not allowed: queries read only the release tables"
                )
            continue
        if not isinstance(this, exp.Identifier):
            raise QueryError(f"unsupported FROM item {tbl.sql()!r}: queries read only the release tables")
        if tbl.args.get("db") or tbl.args.get("catalog"):
            raise QueryError(f"qualified table name {tbl.sql()!r} is not allowed; tables: {', '.join(tables)}")
        name = this.name
        if name.lower() not in known and name.lower() not in ctes:
            if "/" in name or "." in name or "\\" in name:
                raise QueryError(f"reading files ({name!r}) is not allowed: queries read only the release tables")
            raise QueryError(f"unknown table {name!r}; tables: {', '.join(tables)}")
    for fn in funcs:
        name = _func_name(fn)
        if _FORBIDDEN_FUNC.match(name):
            raise QueryError(f"function {name}() is not allowed: queries read only the release tables")


# -- constants --------------------------------------------------------------------------------


def const(node) -> float | None:
    """The value of a constant numeric expression (literals, + - * /, parentheses), else None."""
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return float(node.this)
        except ValueError:
            return None
    if isinstance(node, exp.Paren):
        return const(node.this)
    if isinstance(node, exp.Neg):
        v = const(node.this)
        return None if v is None else -v
    if isinstance(node, exp.Cast):
        return const(node.this)
    if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Div)):
        a, b = const(node.this), const(node.expression)
        if a is None or b is None:
            return None
        if isinstance(node, exp.Add):
            return a + b
        if isinstance(node, exp.Sub):
            return a - b
        if isinstance(node, exp.Mul):
            return a * b
        return a / b if b != 0 else None
    return None


def _fn(name: str, *args) -> exp.Anonymous:
    return exp.Anonymous(this=name, expressions=list(args))


def _lit(x: float) -> exp.Expression:
    return exp.Literal.number(repr(float(x)))


# -- 3. ADQL ----------------------------------------------------------------------------------

_ADQL_UNSUPPORTED = {"INTERSECTS", "AREA", "CENTROID", "COORD1", "COORD2", "COORDSYS", "REGION"}
_ADQL_FRAMES = {"ICRS", "", "J2000", "ICRS GEOCENTER"}


def _anon_name(node) -> str | None:
    if isinstance(node, exp.Anonymous):
        return str(node.this).upper()
    return None


def _frame_args(node: exp.Anonymous, what: str, n: int) -> list[exp.Expression]:
    """Arguments of an ADQL geometry after its optional coordinate-system string."""
    args = list(node.expressions)
    if args and isinstance(args[0], exp.Literal) and args[0].is_string:
        frame = args[0].this.strip().upper()
        if frame not in _ADQL_FRAMES:
            raise QueryError(f"ADQL {what}: coordinate system {args[0].this!r} is not supported (ICRS only)")
        args = args[1:]
    if n >= 0 and len(args) != n:
        raise QueryError(f"ADQL {what} needs {n} numeric arguments after the coordinate system, got {len(args)}")
    return args


def _adql_contains(point, shape) -> exp.Expression:
    if _anon_name(point) != "POINT":
        raise QueryError("ADQL CONTAINS: the first argument must be POINT('ICRS', ra, dec)")
    x, y = _frame_args(point, "POINT", 2)
    kind = _anon_name(shape)
    if kind == "CIRCLE":
        ra0, dec0, r = _frame_args(shape, "CIRCLE", 3)
        return _fn("cone", x, y, ra0, dec0, r)
    if kind == "BOX":
        ra0, dec0, w, h = _frame_args(shape, "BOX", 4)
        half = lambda v: exp.Div(this=exp.Paren(this=v.copy()), expression=exp.Literal.number(2))  # noqa: E731
        return _fn(
            "box", x, y,
            exp.Sub(this=ra0.copy(), expression=half(w)), exp.Sub(this=dec0.copy(), expression=half(h)),
            exp.Add(this=ra0.copy(), expression=half(w)), exp.Add(this=dec0.copy(), expression=half(h)),
        )
    if kind == "POLYGON":
        verts = _frame_args(shape, "POLYGON", -1)
        return _fn("polygon", x, y, exp.Array(expressions=verts))
    raise QueryError(f"ADQL CONTAINS: region {shape.sql()[:40]!r} is not supported (CIRCLE, BOX, POLYGON)")


def adql_to_duckdb(stmt: exp.Expression) -> exp.Expression:
    """Translate ADQL geometry to the functions of sql/functions.sql (QueryError if unsupported)."""
    for node in list(stmt.walk()):
        name = _anon_name(node)
        if name in _ADQL_UNSUPPORTED:
            raise QueryError(f"ADQL function {name} is not supported")

    def contains_of(node):
        if isinstance(node, exp.Contains):
            return node.this, node.expression
        if _anon_name(node) == "CONTAINS" and len(node.expressions) == 2:
            return node.expressions[0], node.expressions[1]
        return None

    def transform(node):
        # CONTAINS(...) = 1 / 1 = CONTAINS(...) / = 0
        if isinstance(node, (exp.EQ, exp.NEQ)):
            for a, b in ((node.this, node.expression), (node.expression, node.this)):
                c = contains_of(a)
                v = const(b)
                if c is not None and v in (0.0, 1.0):
                    pred = _adql_contains(*c)
                    truth = (v == 1.0) == isinstance(node, exp.EQ)
                    return pred if truth else exp.Not(this=exp.Paren(this=pred))
        c = contains_of(node)
        if c is not None:
            return exp.Cast(this=_adql_contains(*c), to=exp.DataType.build("INTEGER"))
        if _anon_name(node) == "DISTANCE":
            args = list(node.expressions)
            if len(args) == 2 and all(_anon_name(a) == "POINT" for a in args):
                x1, y1 = _frame_args(args[0], "POINT", 2)
                x2, y2 = _frame_args(args[1], "POINT", 2)
                return _fn("ang_sep", x1, y1, x2, y2)
            if len(args) == 4:
                return _fn("ang_sep", *args)
            raise QueryError("ADQL DISTANCE needs two POINTs (or ra1, dec1, ra2, dec2)")
        return node

    for node in stmt.walk():
        name = _anon_name(node)
        if name in {"POINT", "CIRCLE", "BOX", "POLYGON"}:
            p = node.parent
            if not (isinstance(p, exp.Contains) or _anon_name(p) in ("CONTAINS", "DISTANCE")):
                raise QueryError(f"ADQL {name} is supported only inside CONTAINS(...) or DISTANCE(...)")
    return stmt.transform(transform, copy=False)


# -- 4. scisql / qserv -----------------------------------------------------------------------


def _select_sources(select: exp.Select) -> list[exp.Expression]:
    frm = select.args.get("from_") or select.args.get("from")
    out = [frm.this] if frm is not None else []
    for j in select.args.get("joins") or []:
        out.append(j.this)
    return out


def _base_tables(select: exp.Select, tables: dict[str, TableSpec], ctes: set[str]) -> dict[str, tuple[exp.Table, TableSpec]]:
    """alias (lower case) -> (Table node, spec) of the release tables read directly by ``select``."""
    lower = {k.lower(): v for k, v in tables.items()}
    out = {}
    for src in _select_sources(select):
        if isinstance(src, exp.Table) and isinstance(src.this, exp.Identifier):
            name = src.this.name.lower()
            if name in lower and name not in ctes:
                out[src.alias_or_name.lower()] = (src, lower[name])
    return out


def scisql_to_duckdb(stmt: exp.Expression, tables: dict[str, TableSpec]) -> exp.Expression:
    """Variadic scisql_s2PtInCPoly -> polygon; qserv_areaspec_* -> cone/box on the FROM table."""

    def transform(node):
        name = _anon_name(node)
        if name == "SCISQL_S2PTINCPOLY":
            args = list(node.expressions)
            if len(args) < 8 or len(args) % 2:
                raise QueryError("scisql_s2PtInCPoly(ra, dec, ra1, dec1, ra2, dec2, ra3, dec3, ...) needs >= 3 vertices")
            poly = _fn("polygon", args[0], args[1], exp.Array(expressions=args[2:]))
            return exp.Cast(this=poly, to=exp.DataType.build("INTEGER"))
        return node

    stmt = stmt.transform(transform, copy=False)
    ctes = {c.alias_or_name.lower() for c in stmt.find_all(exp.CTE)}
    for select in list(stmt.find_all(exp.Select)):
        where = select.args.get("where")
        if where is None:
            continue
        for node in list(where.find_all(exp.Anonymous)):
            name = _anon_name(node)
            if name not in ("QSERV_AREASPEC_CIRCLE", "QSERV_AREASPEC_BOX"):
                continue
            args = list(node.expressions)
            need = 3 if name.endswith("CIRCLE") else 4
            if len(args) != need:
                raise QueryError(f"{name.lower()} needs {need} arguments, got {len(args)}")
            pos = [(a, s) for a, (t, s) in _base_tables(select, tables, ctes).items() if s.ra]
            if not pos:
                raise QueryError(f"{name.lower()} needs a table with positions (Object, Source) in FROM")
            alias, spec = pos[0]
            ra = exp.column(spec.ra, table=alias)
            dec = exp.column(spec.dec, table=alias)
            fname = "cone" if name.endswith("CIRCLE") else "box"
            repl = _fn(fname, ra, dec, *args)
            parent = node.parent
            if isinstance(parent, exp.EQ) and const(parent.expression) == 1.0:
                parent.replace(repl)
            else:
                node.replace(repl)
    return stmt


# -- 5. pruning -------------------------------------------------------------------------------


def _conjuncts(node) -> list[exp.Expression]:
    if node is None:
        return []
    if isinstance(node, exp.Where):
        node = node.this
    if isinstance(node, exp.Paren):
        return _conjuncts(node.this)
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    return [node]


def _unwrap_bool(node):
    """cone(...) | scisql_s2PtIn*(...) = 1 | CAST(polygon(...) AS INT) = 1 -> the call node."""
    if isinstance(node, exp.Paren):
        return _unwrap_bool(node.this)
    if isinstance(node, exp.EQ):
        for a, b in ((node.this, node.expression), (node.expression, node.this)):
            if const(b) == 1.0:
                a = a.this if isinstance(a, exp.Cast) else a
                if _anon_name(a) in {"CONE", "BOX", "POLYGON", "SCISQL_S2PTINCIRCLE", "SCISQL_S2PTINBOX"}:
                    return a
        return None
    if _anon_name(node) in {"CONE", "BOX", "POLYGON"}:
        return node
    return None


def _sep_bound(node):
    """ang_sep(a, b, c, d) < r (or r > ang_sep(...), <=, >=) -> (ang_sep node, r)."""
    if isinstance(node, (exp.LT, exp.LTE)):
        f, r = node.this, node.expression
    elif isinstance(node, (exp.GT, exp.GTE)):
        f, r = node.expression, node.this
    else:
        return None
    if _anon_name(f) in {"ANG_SEP", "SCISQL_ANGSEP"} and len(f.expressions) == 4:
        v = const(r)
        if v is not None:
            return f, v
    return None


def _region_term(node):
    """A conjunct limiting one position to a constant region: ((ra_col, dec_col), Region) or None."""
    call = _unwrap_bool(node)
    try:
        if call is not None:
            name = _anon_name(call)
            args = list(call.expressions)
            if name in ("CONE", "SCISQL_S2PTINCIRCLE") and len(args) == 5:
                vals = [const(a) for a in args[2:]]
                if all(isinstance(a, exp.Column) for a in args[:2]) and None not in vals:
                    return (args[0], args[1]), Cone(*vals)
            if name in ("BOX", "SCISQL_S2PTINBOX") and len(args) == 6:
                vals = [const(a) for a in args[2:]]
                if all(isinstance(a, exp.Column) for a in args[:2]) and None not in vals:
                    return (args[0], args[1]), Box(*vals)
            if name == "POLYGON" and len(args) == 3 and isinstance(args[2], exp.Array):
                vals = [const(a) for a in args[2].expressions]
                if all(isinstance(a, exp.Column) for a in args[:2]) and None not in vals:
                    return (args[0], args[1]), Polygon(tuple(vals))
            return None
        sb = _sep_bound(node)
        if sb is not None:
            f, r = sb
            a = list(f.expressions)
            for cols, cen in ((a[:2], a[2:]), (a[2:], a[:2])):
                vals = [const(c) for c in cen]
                if all(isinstance(c, exp.Column) for c in cols) and None not in vals:
                    if r <= 0:
                        return None
                    return (cols[0], cols[1]), Cone(vals[0], vals[1], min(180.0, r))
    except InputError as exc:
        raise QueryError(str(exc)) from None
    return None


def _resolve(col: exp.Column, base: dict[str, tuple[exp.Table, TableSpec]], all_sources: int) -> str | None:
    """Alias of the base table a column belongs to, or None if it cannot be told."""
    t = col.table
    if t:
        return t.lower() if t.lower() in base else None
    owners = [a for a, (_, s) in base.items() if col.name.lower() in {c.lower() for c in s.columns}]
    if len(owners) == 1 and all_sources == len(base):
        return owners[0]
    if len(owners) == 1 and all_sources == 1:
        return owners[0]
    return None


def _is_pos(spec: TableSpec, ra: exp.Column, dec: exp.Column) -> bool:
    return bool(spec.ra) and ra.name.lower() == spec.ra.lower() and dec.name.lower() == spec.dec.lower()


def _intersect(a, b):
    """Intersection of two sorted, merged lists of half-open ranges."""
    lo1, hi1 = a
    lo2, hi2 = b
    out_lo, out_hi = [], []
    i = j = 0
    while i < lo1.size and j < lo2.size:
        lo = max(lo1[i], lo2[j])
        hi = min(hi1[i], hi2[j])
        if lo < hi:
            out_lo.append(lo)
            out_hi.append(hi)
        if hi1[i] < hi2[j]:
            i += 1
        else:
            j += 1
    return np.asarray(out_lo, dtype=np.int64), np.asarray(out_hi, dtype=np.int64)


def _dec_band(region: Region) -> tuple[float, float] | None:
    """[dec_min, dec_max] of a cone (padded by 1e-9 deg so float rounding in the exact test
    never puts a row inside the cone that the band leaves out), else None."""
    if not isinstance(region, Cone) or region.radius >= 90.0:
        return None
    pad = 1e-9
    return region.dec - region.radius - pad, region.dec + region.radius + pad


def _range_predicate(alias: str, lo: np.ndarray, hi: np.ndarray, plan: Plan, dec_col: str | None = None,
                     regions: list[Region] = ()) -> exp.Expression:
    """A placeholder column standing for ``(alias._healpix_29 BETWEEN a AND b OR ...)`` (and,
    for cones, ``alias.dec BETWEEN d1 AND d2``, which DuckDB tests before the trigonometry);
    its text is put in after generation (parsing thousands of tokens with sqlglot is slow)."""
    lo, hi = coarsen_ranges(lo, hi, MAX_RANGES)
    col = f'"{alias}"._healpix_29'
    if lo.size == 0:
        text = "FALSE"
    else:
        text = "(" + " OR ".join(f"{col} BETWEEN {int(a)} AND {int(b) - 1}" for a, b in zip(lo, hi)) + ")"
        for band in (_dec_band(r) for r in regions):
            if band is not None and dec_col:
                text += f' AND "{alias}"."{dec_col}" BETWEEN {band[0]!r} AND {band[1]!r}'
    ph = _PLACEHOLDER.format(plan.token, len(plan.sources))
    plan.sources[ph] = text
    return exp.column(ph)


def prune(stmt: exp.Expression, tables: dict[str, TableSpec], plan: Plan) -> exp.Expression:
    """Replace sky-limited release tables by reads of the overlapping partitions only."""
    ctes = {c.alias_or_name.lower() for c in stmt.find_all(exp.CTE)}
    for select in list(stmt.find_all(exp.Select)):
        base = _base_tables(select, tables, ctes)
        if not base:
            continue
        nsrc = len(_select_sources(select))
        found: dict[str, list[Region]] = {}
        terms = _conjuncts(select.args.get("where"))
        joins = select.args.get("joins") or []
        if not any(j.side for j in joins):  # inner joins only: ON terms then act like WHERE terms
            for j in joins:
                terms += _conjuncts(j.args.get("on"))
        for term in terms:
            rt = _region_term(term)
            if rt is None:
                continue
            (ra, dec), region = rt
            a1 = _resolve(ra, base, nsrc)
            a2 = _resolve(dec, base, nsrc)
            if a1 is None or a1 != a2:
                continue
            tbl, spec = base[a1]
            if spec.source is None or not _is_pos(spec, ra, dec):
                continue
            found.setdefault(a1, []).append(region)
        for alias, regions in found.items():
            tbl, spec = base[alias]
            rng = regions[0].ranges29()
            for reg in regions[1:]:
                rng = _intersect(rng, reg.ranges29())
            if spec.narrow is not None:
                rng = spec.narrow(*rng)
            src = spec.source(*rng)
            if src is None:
                continue
            ph = _PLACEHOLDER.format(plan.token, len(plan.sources))
            plan.sources[ph] = f"/*{spec.name}*/ {src}"
            plan.regions[alias] = regions[0]
            name = tbl.alias_or_name
            tbl.set("this", exp.to_identifier(ph))
            tbl.set("alias", exp.TableAlias(this=exp.to_identifier(name, quoted=True)))
            select.where(_range_predicate(name, *rng, plan, spec.dec, regions), copy=False)
    return stmt


# -- 6. neighbour joins -----------------------------------------------------------------------


def neighbour_order(radius_deg: float, max_order: int = 20) -> int:
    """Order whose cells are >= 2 x radius wide (mean size), so pairs closer than ``radius`` lie in the
    same or adjacent cells."""
    if radius_deg <= 0:
        return max_order
    k = math.floor(math.log2(_PIX0_DEG / (2.0 * radius_deg)))
    return int(min(max_order, max(0, k)))


def _pair_term(term, base, nsrc):
    """ang_sep(a.ra, a.dec, b.ra, b.dec) < r (or cone/scisql forms) -> (alias_a, alias_b, r)."""
    cols = r = None
    sb = _sep_bound(term)
    if sb is not None:
        f, r = sb
        cols = list(f.expressions)
    else:
        call = _unwrap_bool(term)
        if call is not None and _anon_name(call) in ("CONE", "SCISQL_S2PTINCIRCLE") and len(call.expressions) == 5:
            cols = list(call.expressions[:4])
            r = const(call.expressions[4])
    if cols is None or r is None or r <= 0 or not all(isinstance(c, exp.Column) for c in cols):
        return None
    a = _resolve(cols[0], base, nsrc)
    b = _resolve(cols[2], base, nsrc)
    if a is None or b is None or a == b:
        return None
    if _resolve(cols[1], base, nsrc) != a or _resolve(cols[3], base, nsrc) != b:
        return None
    if not _is_pos(base[a][1], cols[0], cols[1]) or not _is_pos(base[b][1], cols[2], cols[3]):
        return None
    return a, b, float(r)


def neighbour_join(stmt: exp.Expression, tables: dict[str, TableSpec], plan: Plan) -> exp.Expression:
    """Run positional self/cross-joins through HEALPix cells instead of a cross product."""
    ctes = {c.alias_or_name.lower() for c in stmt.find_all(exp.CTE)}
    for select in list(stmt.find_all(exp.Select)):
        joins = select.args.get("joins") or []
        if any(j.side or (j.kind and j.kind.upper() not in ("INNER", "CROSS")) for j in joins):
            continue
        if any(j.args.get("on") is not None and not isinstance(j.this, exp.Table) for j in joins):
            continue
        base = {}
        for src in _select_sources(select):
            if not isinstance(src, exp.Table) or not isinstance(src.this, exp.Identifier):
                continue
            name = src.this.name
            spec = next((s for k, s in tables.items() if k.lower() == name.lower()), None)
            if spec is None and name in plan.sources:
                # already pruned: find the spec through the alias recorded by prune()
                alias = src.alias_or_name.lower()
                spec = next((s for s in tables.values() if plan.sources[name].startswith(f"/*{s.name}*/")), None)
                if spec is not None:
                    base[alias] = (src, spec)
                continue
            if spec is not None and name.lower() not in ctes:
                base[src.alias_or_name.lower()] = (src, spec)
        if len(base) < 2:
            continue
        nsrc = len(_select_sources(select))
        terms = _conjuncts(select.args.get("where"))
        for j in joins:
            terms += _conjuncts(j.args.get("on"))
        pair = None
        for term in terms:
            pair = _pair_term(term, base, nsrc)
            if pair:
                break
        if pair is None:
            continue
        a, b, r = pair
        k = neighbour_order(r)
        shift = 2 * (29 - k)
        ca, cb = f"__nb_{a}", f"__nb_{b}"
        for alias, key, expr in (
            (a, ca, f"(_healpix_29 >> {shift})"),
            (b, cb, f"UNNEST(list_distinct(__hpx_neighbours(_healpix_29, {k})))"),
        ):
            tbl, spec = base[alias]
            inner = tbl.this.name
            ph = _PLACEHOLDER.format(plan.token, len(plan.sources))
            src_text = plan.sources.get(inner, f'"{spec.name}"')
            plan.sources[ph] = f"/*{spec.name}*/ (SELECT *, {expr} AS {key} FROM {src_text})"
            name = tbl.alias_or_name
            tbl.set("this", exp.to_identifier(ph))
            tbl.set("alias", exp.TableAlias(this=exp.to_identifier(name, quoted=True)))
        select.where(sqlglot.parse_one(f'"{base[a][0].alias_or_name}".{ca} = "{base[b][0].alias_or_name}".{cb}'), copy=False)
        excl = [exp.column(ca), exp.column(cb)]
        new = []
        for e in select.expressions:
            if isinstance(e, exp.Star):
                e = exp.Star(except_=[x.copy() for x in excl])
            elif isinstance(e, exp.Column) and isinstance(e.this, exp.Star):
                t = e.table.lower()
                key = ca if t == a else cb if t == b else None
                if key:
                    e = exp.Column(this=exp.Star(except_=[exp.column(key)]), table=exp.to_identifier(e.table))
            new.append(e)
        select.set("expressions", new)
        plan.neighbour_join.append((a, b, r, k))
    return stmt


# -- lineage ----------------------------------------------------------------------------------


def lineage(stmt: exp.Expression, tables: dict[str, TableSpec]) -> dict[str, tuple[str, str]]:
    """Output column (lower case) -> (table, column) where it maps 1:1 to a release column."""
    if not isinstance(stmt, exp.Select):
        return {}
    ctes = {c.alias_or_name.lower() for c in stmt.find_all(exp.CTE)}
    base = _base_tables(stmt, tables, ctes)
    nsrc = len(_select_sources(stmt))
    out: dict[str, tuple[str, str]] = {}

    def add_all(alias):
        spec = base[alias][1]
        for c in spec.columns:
            out.setdefault(c.lower(), (spec.name, c))

    for e in stmt.expressions:
        if isinstance(e, exp.Star):
            for alias in base:
                add_all(alias)
            continue
        target = e.this if isinstance(e, exp.Alias) else e
        if isinstance(target, exp.Column) and isinstance(target.this, exp.Star):
            if target.table.lower() in base:
                add_all(target.table.lower())
            continue
        if isinstance(target, exp.Column):
            alias = _resolve(target, base, nsrc)
            if alias is not None:
                spec = base[alias][1]
                col = next((c for c in spec.columns if c.lower() == target.name.lower()), None)
                if col is not None:
                    out[e.alias_or_name.lower()] = (spec.name, col)
    return out


# -- all passes -------------------------------------------------------------------------------


def cap_rows(stmt: exp.Expression, n: int) -> exp.Expression:
    """At most ``n`` rows from the outermost query (an existing smaller LIMIT stays)."""
    if not isinstance(stmt, exp.Query):
        return stmt
    lim = stmt.args.get("limit")
    if lim is not None:
        cur = const(lim.expression) if isinstance(lim, exp.Limit) else None
        if cur is not None and cur <= n:
            return stmt
        if isinstance(lim, exp.Limit):
            lim.set("expression", exp.Literal.number(int(n)))
            return stmt
        return stmt
    if isinstance(stmt, exp.Select):  # built directly: stmt.limit(int) would parse the number
        stmt.set("limit", exp.Limit(expression=exp.Literal.number(int(n))))
        return stmt
    return stmt.limit(exp.Literal.number(int(n)), copy=False)


def translate(query: str, dialect: str = "duckdb", *, tables: dict[str, TableSpec], limit: int | None = None) -> Plan:
    """Check and translate one query to DuckDB SQL with sky pruning (see the module doc);
    ``limit`` caps the rows of the outermost query."""
    stmt = parse(query, dialect)
    check_read_only(stmt, tables)
    if dialect == "qserv":  # MySQL/Qserv forms and the other sciSQL functions: minidr/query/qserv.py
        from . import qserv

        stmt = qserv.to_duckdb(stmt, tables)
    if dialect == "adql":
        stmt = adql_to_duckdb(stmt)
    stmt = scisql_to_duckdb(stmt, tables)
    plan = Plan(sql="")
    plan.lineage = lineage(stmt, tables)
    stmt = prune(stmt, tables, plan)
    stmt = neighbour_join(stmt, tables, plan)
    if limit is not None:
        stmt = cap_rows(stmt, limit)
    sql = stmt.sql(dialect="duckdb", copy=False)  # the tree is ours: no defensive copy
    # placeholders were inserted in order; later ones may contain earlier ones
    for ph in sorted(plan.sources, key=lambda p: -int(p.rsplit("_", 1)[1])):
        sql = sql.replace(ph, plan.sources[ph])
    plan.sql = sql
    return plan
