"""Table schemas from ``CREATE TABLE`` statements in MySQL syntax, as Qserv and most archives
publish them, read with sqlglot's MySQL reader (never by regular expressions).

Backticks, ``bigint(20)``, ``double NOT NULL``, ``COMMENT '...'`` (the column's
description; a trailing ``[unit]`` in it becomes the unit), ``PRIMARY KEY (...)``,
``KEY``/``INDEX`` clauses, ``ENGINE=...`` and ``DEFAULT CHARSET=...`` are understood. A file
may hold several statements (``DROP TABLE IF EXISTS ...; CREATE TABLE ...``): the
``CREATE TABLE`` of the wanted table is used, or the only one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from ..errors import InputError

_T = exp.DataType.Type
_TYPES = {
    _T.TINYINT: pa.int8(), _T.UTINYINT: pa.int16(),
    _T.SMALLINT: pa.int16(), _T.USMALLINT: pa.int32(),
    _T.MEDIUMINT: pa.int32(), _T.UMEDIUMINT: pa.int32(),
    _T.INT: pa.int32(), _T.UINT: pa.int64(),
    _T.BIGINT: pa.int64(), _T.UBIGINT: pa.uint64(),
    _T.FLOAT: pa.float32(), _T.DOUBLE: pa.float64(),
    _T.DECIMAL: pa.float64(), _T.UDECIMAL: pa.float64(),
    _T.BOOLEAN: pa.bool_(), _T.BIT: pa.int64(),
    _T.CHAR: pa.string(), _T.VARCHAR: pa.string(), _T.NCHAR: pa.string(), _T.NVARCHAR: pa.string(),
    _T.TEXT: pa.string(), _T.MEDIUMTEXT: pa.string(), _T.LONGTEXT: pa.string(), _T.TINYTEXT: pa.string(),
    _T.ENUM: pa.string(), _T.SET: pa.string(), _T.JSON: pa.string(),
    _T.BINARY: pa.binary(), _T.VARBINARY: pa.binary(), _T.BLOB: pa.binary(),
    _T.MEDIUMBLOB: pa.binary(), _T.LONGBLOB: pa.binary(), _T.TINYBLOB: pa.binary(),
    _T.DATE: pa.date32(), _T.DATETIME: pa.timestamp("us"), _T.TIMESTAMP: pa.timestamp("us"),
    _T.TIME: pa.time64("us"), _T.YEAR: pa.int16(),
}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_UNIT = re.compile(r"\s*\[([^\[\]]*)\]\s*$")


@dataclass
class TableSchema:
    """A parsed ``CREATE TABLE``: Arrow schema (NOT NULL -> ``nullable=False``, unit and
    description in field metadata) and the primary key columns."""

    name: str
    schema: pa.Schema
    primary_key: list[str] = field(default_factory=list)


def _arrow_type(kind: exp.DataType, column: str, source: str) -> pa.DataType:
    t = kind.this
    if t == _T.TINYINT and kind.expressions and kind.expressions[0].name == "1":
        return pa.int8()  # MySQL's "boolean": keep the integer as written
    out = _TYPES.get(t)
    if out is None:
        raise InputError(f"column type {kind.sql(dialect='mysql')} is not supported", path=source, keyword=column)
    return out


def _column(cdef: exp.ColumnDef, source: str) -> tuple[pa.Field, bool]:
    name = cdef.this.name
    kind = cdef.args.get("kind")
    if kind is None:
        raise InputError("column without a type", path=source, keyword=name)
    typ = _arrow_type(kind, name, source)
    nullable, comment, pk = True, "", False
    for c in cdef.args.get("constraints") or []:
        k = c.args.get("kind")
        if isinstance(k, exp.NotNullColumnConstraint) and not k.args.get("allow_null"):
            nullable = False
        elif isinstance(k, exp.CommentColumnConstraint):
            comment = k.this.name if isinstance(k.this, exp.Literal) else k.this.sql()
        elif isinstance(k, exp.PrimaryKeyColumnConstraint):
            pk = True
            nullable = False
    unit = ""
    m = _UNIT.search(comment)
    if m:
        unit = m.group(1).strip()
        comment = comment[: m.start()].rstrip()
    meta = {b"unit": unit.encode(), b"description": comment.encode()}
    return pa.field(name, typ, nullable=nullable, metadata=meta), pk


def parse_create_table(text: str, table: str | None = None, *, source: str = "schema") -> TableSchema:
    """The schema of ``table`` (or of the only table) from MySQL ``CREATE TABLE`` text."""
    try:
        statements = [s for s in sqlglot.parse(text, read="mysql") if s is not None]
    except (ParseError, TokenError) as exc:
        first = _ANSI.sub("", str(exc).splitlines()[0] if str(exc) else "syntax error")
        raise InputError(f"cannot parse the CREATE TABLE statement: {first}", path=source) from None
    creates = [s for s in statements if isinstance(s, exp.Create) and str(s.args.get("kind", "")).upper() == "TABLE"
               and isinstance(s.this, exp.Schema)]
    if not creates:
        raise InputError("no CREATE TABLE statement found", path=source)
    chosen = creates[0]
    if len(creates) > 1 or table is not None:
        named = [c for c in creates if table is not None and c.this.this.name.lower() == table.lower()]
        if named:
            chosen = named[0]
        elif len(creates) > 1:
            names = ", ".join(c.this.this.name for c in creates)
            raise InputError(f"no CREATE TABLE for {table!r} (found: {names})", path=source)
    fields, pk = [], []
    for item in chosen.this.expressions:
        if isinstance(item, exp.ColumnDef):
            f, is_pk = _column(item, source)
            if f.name.lower() in {g.name.lower() for g in fields}:
                raise InputError("column defined twice", path=source, keyword=f.name)
            fields.append(f)
            if is_pk:
                pk.append(f.name)
        elif isinstance(item, exp.PrimaryKey):
            pk.extend(e.name for e in item.expressions)
    if not fields:
        raise InputError("CREATE TABLE without columns", path=source)
    names = {f.name.lower(): i for i, f in enumerate(fields)}
    for col in pk:
        if col.lower() not in names:
            raise InputError("PRIMARY KEY names an unknown column", path=source, keyword=col)
        i = names[col.lower()]
        fields[i] = fields[i].with_nullable(False)
    return TableSchema(name=chosen.this.this.name, schema=pa.schema(fields), primary_key=pk)


def read_schema_file(path: str | Path, table: str | None = None) -> TableSchema:
    """:func:`parse_create_table` of a file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"cannot read schema: {exc.strerror}", path=str(path)) from None
    return parse_create_table(text, table, source=str(path))
