"""Cell and number formatting shared by the widgets (no textual here)."""

from __future__ import annotations


import pyarrow as pa

from ..query.formats import text_cell


def cell_text(v) -> str:
    """A value as the results table shows it: floats with 9 significant digits, NULL, NaN."""
    return text_cell(v, 9)


def is_numeric(field: pa.Field) -> bool:
    t = field.type
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def unit_of(field: pa.Field) -> str:
    return (field.metadata or {}).get(b"unit", b"").decode()


def description_of(field: pa.Field) -> str:
    return (field.metadata or {}).get(b"description", b"").decode()


def short_type(t: pa.DataType) -> str:
    s = str(t)
    return {"string": "str", "large_string": "str", "double": "f64", "float": "f32", "bool": "bool"}.get(
        s, s.replace("int", "i").replace("uint", "u") if s.startswith(("int", "uint")) else s
    )


def one_line(message: str, width: int = 300) -> str:
    """An error message on one line (first line, whitespace collapsed, shortened)."""
    text = " ".join(str(message).strip().splitlines()[0].split()) if str(message).strip() else "error"
    return text if len(text) <= width else text[: width - 1] + "…"
