"""Spatial SQL over a published release: :func:`open_release` -> :class:`Release`.

``Release.sql`` (DuckDB SQL, ADQL or Qserv SQL), ``cone``, ``xmatch``, ``lightcurve``,
``tables``, ``schema``, ``interrupt``; :func:`to_astropy` turns a result into an astropy
Table with units. See docs/sql.md.
"""

from __future__ import annotations

import pyarrow as pa

from .engine import Release, open_release


def to_astropy(table: pa.Table):
    """An astropy Table of an Arrow result, with units (and descriptions) from field metadata."""
    import astropy.units as u
    from astropy.table import Table

    out = Table()
    for f, col in zip(table.schema, table.columns):
        data = col.to_numpy(zero_copy_only=False)
        if col.null_count:
            import numpy as np

            mask = col.is_null().to_numpy(zero_copy_only=False)
            if np.issubdtype(data.dtype, np.floating) or data.dtype == object:
                filled = col.fill_null(0 if pa.types.is_integer(f.type) or pa.types.is_floating(f.type) else "")
                data = np.ma.masked_array(filled.to_numpy(zero_copy_only=False), mask=mask)
        meta = f.metadata or {}
        unit = meta.get(b"unit", b"").decode() or None
        desc = meta.get(b"description", b"").decode() or None
        try:
            unit = u.Unit(unit, parse_strict="silent") if unit else None
        except ValueError:
            unit = None
        out[f.name] = data
        if unit is not None:
            out[f.name].unit = unit
        if desc:
            out[f.name].description = desc
    tmeta = table.schema.metadata or {}
    if b"truncated" in tmeta:
        out.meta["truncated"] = tmeta[b"truncated"] == b"true"
    return out


__all__ = ["Release", "open_release", "to_astropy"]
