"""Arrow table -> bytes in the output formats of the CLI: table, csv, json, parquet, fits.

* ``table``: aligned text for people: a header line, a units line (``[deg]``) when any
  column has a unit, a rule, then the rows; floats with 10 significant digits, nulls as
  ``NULL``.
* ``csv``: a header line, then rows (RFC 4180 quoting, ``\\n`` line ends); floats in their
  shortest round-trip form; nulls empty.
* ``json``: an array of row objects (one per line), NaN and nulls as ``null``.
* ``parquet``: the table with its schema metadata (each field's ``unit`` and ``description``).
* ``fits``: a binary-table extension with ``TUNITn`` from the fields' units (``TCOMMn`` is
  not standard, so descriptions go to ``TTYPEn`` comments); nulls become NaN for floats
  and ``TNULLn`` for integers.

Every writer is deterministic: the same table gives the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import QueryError

FORMATS = ("table", "csv", "json", "parquet", "fits")
BINARY = ("parquet", "fits")


def render(table: pa.Table, fmt: str) -> bytes:
    """``table`` as bytes in ``fmt`` (one of :data:`FORMATS`)."""
    try:
        fn = {"table": to_text, "csv": to_csv, "json": to_json, "parquet": to_parquet, "fits": to_fits}[fmt]
    except KeyError:
        raise QueryError(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}") from None
    out = fn(table)
    return out.encode() if isinstance(out, str) else out


def _unit(field: pa.Field) -> str:
    return (field.metadata or {}).get(b"unit", b"").decode()


def text_cell(v, digits: int = 10) -> str:
    """A value as people read it in a table: NULL, NaN, true/false, floats to ``digits``
    significant digits (also used by the terminal explorer)."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        return f"{v:.{digits}g}"
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    return str(v)


def to_text(table: pa.Table) -> str:
    """Aligned text: header, units line (if any unit), rule, rows. Numbers right-aligned."""
    names = table.column_names
    units = [_unit(f) for f in table.schema]
    cols = [[text_cell(v) for v in table.column(i).to_pylist()] for i in range(table.num_columns)]
    numeric = [pa.types.is_integer(f.type) or pa.types.is_floating(f.type) for f in table.schema]
    show_units = any(units)
    unit_cells = [f"[{u}]" if u else "" for u in units]
    widths = []
    for i, name in enumerate(names):
        w = max([len(name), len(unit_cells[i]) if show_units else 0] + [len(c) for c in cols[i]])
        widths.append(w)

    def line(cells):
        parts = [c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(parts).rstrip()

    out = [line(names)]
    if show_units:
        out.append(line(unit_cells))
    out.append("  ".join("-" * w for w in widths))
    for r in range(table.num_rows):
        out.append(line([cols[i][r] for i in range(len(names))]))
    return "\n".join(out) + "\n"


def _fmt_csv(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "NaN" if math.isnan(v) else repr(v)
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    return str(v)


def to_csv(table: pa.Table) -> str:
    """A header line, then one line per row."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(table.column_names)
    cols = [table.column(i).to_pylist() for i in range(table.num_columns)]
    for r in range(table.num_rows):
        w.writerow([_fmt_csv(c[r]) for c in cols])
    return buf.getvalue()


def _json_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {k: _json_value(x) for k, x in v.items()}
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def to_json(table: pa.Table) -> str:
    """An array of row objects, one row per line."""
    rows = table.to_pylist()
    if not rows:
        return "[]\n"
    body = ",\n".join(json.dumps({k: _json_value(v) for k, v in row.items()}, allow_nan=False) for row in rows)
    return "[\n" + body + "\n]\n"


def to_parquet(table: pa.Table) -> bytes:
    """Parquet bytes (zstd), field metadata (units, descriptions) kept."""
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", store_schema=True)
    return buf.getvalue()


def to_fits(table: pa.Table) -> bytes:
    """A FITS file: empty primary HDU + a BINTABLE with TUNITn."""
    from astropy.io import fits

    columns = []
    for f, col in zip(table.schema, table.columns):
        t = f.type
        unit = _unit(f) or None
        if pa.types.is_dictionary(t):
            col = col.cast(t.value_type)
            t = t.value_type
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            vals = ["" if v is None else v for v in col.to_pylist()]
            width = max([1] + [len(v.encode()) for v in vals])
            columns.append(fits.Column(name=f.name, format=f"{width}A", unit=unit, array=np.array(vals, dtype=f"S{width}") if vals else np.zeros(0, f"S{width}")))
        elif pa.types.is_boolean(t):
            arr = np.array([bool(v) if v is not None else False for v in col.to_pylist()], dtype=bool)
            columns.append(fits.Column(name=f.name, format="L", unit=unit, array=arr))
        elif pa.types.is_integer(t):
            code = {8: "I", 16: "I", 32: "J", 64: "K"}[t.bit_width]
            dtype = {"I": np.int16, "J": np.int32, "K": np.int64}[code]
            null = None
            if col.null_count:
                null = int(np.iinfo(dtype).min)
                arr = np.asarray(col.fill_null(null).to_numpy(zero_copy_only=False), dtype=dtype)
            else:
                arr = np.asarray(col.to_numpy(zero_copy_only=False), dtype=dtype)
            columns.append(fits.Column(name=f.name, format=code, unit=unit, null=null, array=arr))
        elif pa.types.is_floating(t):
            arr = np.asarray(col.cast(pa.float64()).fill_null(float("nan")).to_numpy(zero_copy_only=False), dtype=np.float64)
            columns.append(fits.Column(name=f.name, format="D", unit=unit, array=arr))
        else:
            raise QueryError(f"column {f.name!r} of type {t} cannot be written to FITS")
    hdu = fits.BinTableHDU.from_columns(columns)
    for i, f in enumerate(table.schema, start=1):
        desc = (f.metadata or {}).get(b"description", b"").decode()
        if desc:
            hdu.header.comments[f"TTYPE{i}"] = desc[:47]
    meta = table.schema.metadata or {}
    if b"truncated" in meta:
        hdu.header["TRUNC"] = (meta[b"truncated"] == b"true", "result truncated at the row cap")
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buf)
    return buf.getvalue()
