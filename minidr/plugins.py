"""Extra Source measurements: your own code, run by the pipeline on every frame.

A measurement plug-in is a function decorated with :func:`source_measurement`, which
declares the Source columns it adds (name, type, unit, description)::

    from minidr.plugins import Column, source_measurement

    @source_measurement(Column("concentration", "float64", "", "flux in r < 1 FWHM / flux in r < 2 FWHM"))
    def concentration(image, variance, mask, x, y, fwhm, njy_per_electron):
        ...
        return {"concentration": values}

It is called once per frame, after calibration, with

* ``image`` background-subtracted calibrated image [e-], float32 (ny, nx);
* ``variance`` its variance [e-^2], float32; ``mask`` the MaskBit plane, uint16;
* ``x``, ``y`` the Sources' centroids [pixels, 0-based, pixel centres at integers], float64;
* ``fwhm`` the PSF FWHM at each Source [pixels], float64;
* ``njy_per_electron`` the frame's photometric calibration [nJy per e-] (multiply a flux in
  e- by it to publish it in nJy),

and returns one array of ``len(x)`` values per declared column. The repository's
``minidr.toml`` lists plug-ins in ``[measurement] plugins`` as ``"module:function"`` (an
importable module) or ``"path/to/file.py:function"`` (relative to the repository). The
columns travel with Source into every release (units and descriptions in the Parquet
schema); frames processed before a plug-in was added (or its file changed) are processed
again. See docs/plugins.md.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import keyword
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa

from .errors import ConfigError, InputError

DTYPES = {"float64": pa.float64(), "float32": pa.float32(), "int64": pa.int64(), "int32": pa.int32(),
          "bool": pa.bool_()}
"""Column types a plug-in may declare."""

PLUGIN_KEY = b"plugin"
"""Field-metadata key marking a Source column added by a plug-in (its value: the spec)."""


@dataclass(frozen=True)
class Column:
    """One Source column added by a plug-in."""

    name: str
    dtype: str = "float64"       #: one of :data:`DTYPES`
    unit: str = ""               #: astropy unit string ("" for dimensionless)
    description: str = ""

    def __post_init__(self):
        if not self.name.isidentifier() or keyword.iskeyword(self.name):
            raise ConfigError(f"plug-in column name {self.name!r} is not an identifier")
        if self.dtype not in DTYPES:
            raise ConfigError(f"plug-in column {self.name}: dtype {self.dtype!r} not one of {', '.join(DTYPES)}")


def source_measurement(*columns: Column) -> Callable:
    """Decorator declaring the Source columns a measurement function returns."""
    if not columns:
        raise ConfigError("source_measurement needs at least one Column")

    def mark(fn):
        fn.minidr_columns = tuple(columns)
        return fn

    return mark


@dataclass(frozen=True)
class Plugin:
    """A loaded plug-in: its spec, function, columns and the sha256 of its source file."""

    spec: str
    function: Callable
    columns: tuple[Column, ...]
    source_sha256: str

    def fields(self) -> list[pa.Field]:
        """Arrow fields (unit, description and the plug-in spec in the metadata)."""
        return [pa.field(c.name, DTYPES[c.dtype], nullable=True,
                         metadata={b"unit": c.unit.encode(), b"description": c.description.encode(),
                                   PLUGIN_KEY: self.spec.encode()})
                for c in self.columns]


def load(spec: str, base: str | Path | None = None) -> Plugin:
    """Load ``"module:function"`` or ``"path/to/file.py:function"`` (relative to ``base``)."""
    module_part, sep, attr = spec.rpartition(":")
    if not sep or not module_part or not attr:
        raise ConfigError(f"plug-in {spec!r}: expected 'module:function' or 'file.py:function'")
    if module_part.endswith(".py"):
        path = Path(module_part)
        if not path.is_absolute() and base is not None:
            path = Path(base) / path
        if not path.is_file():
            raise ConfigError(f"plug-in {spec!r}: file {path} not found")
        name = "minidr_plugin_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
        module = sys.modules.get(name)
        if module is None or getattr(module, "__file__", None) != str(path.resolve()):
            loader_spec = importlib.util.spec_from_file_location(name, path.resolve())
            module = importlib.util.module_from_spec(loader_spec)
            try:
                loader_spec.loader.exec_module(module)
            except Exception as exc:  # noqa: BLE001 - any error in user code, named
                raise ConfigError(f"plug-in {spec!r}: {path} failed to import: {type(exc).__name__}: {exc}") from None
            sys.modules[name] = module
        source = path.resolve()
    else:
        try:
            module = importlib.import_module(module_part)
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"plug-in {spec!r}: cannot import {module_part}: {type(exc).__name__}: {exc}") from None
        source = Path(inspect.getsourcefile(module) or "")
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"plug-in {spec!r}: {module_part} has no function {attr}")
    columns = getattr(fn, "minidr_columns", None)
    if not columns:
        raise ConfigError(f"plug-in {spec!r}: {attr} is not decorated with @minidr.plugins.source_measurement(...)")
    digest = hashlib.sha256(source.read_bytes()).hexdigest() if source.is_file() else ""
    return Plugin(spec, fn, tuple(columns), digest)


def load_all(specs, base: str | Path | None = None, reserved=()) -> list[Plugin]:
    """Load every plug-in of ``specs``; column names must be new (not in ``reserved``) and unique."""
    plugins = [load(s, base) for s in specs]
    seen = set(reserved)
    for p in plugins:
        for c in p.columns:
            if c.name in seen:
                raise ConfigError(f"plug-in {p.spec!r}: column {c.name} already exists in Source")
            seen.add(c.name)
    return plugins


def measure(plugins: list[Plugin], image, variance, mask, x, y, fwhm, njy_per_electron: float) -> dict[str, pa.Array]:
    """Run every plug-in on one frame; returns ``{column: arrow array}`` checked and cast.

    A plug-in that raises, omits a declared column or returns the wrong length raises
    :class:`InputError` naming the plug-in and the column.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    fwhm = np.ascontiguousarray(fwhm, dtype=np.float64)
    out: dict[str, pa.Array] = {}
    for p in plugins:
        try:
            res = p.function(image, variance, mask, x, y, fwhm, float(njy_per_electron))
        except Exception as exc:  # noqa: BLE001 - user code: name it
            raise InputError(f"plug-in {p.spec} failed: {type(exc).__name__}: {exc}", keyword=p.spec) from None
        if not isinstance(res, dict):
            raise InputError(f"plug-in {p.spec} returned {type(res).__name__}, expected a dict of columns",
                             keyword=p.spec)
        for c in p.columns:
            if c.name not in res:
                raise InputError(f"plug-in {p.spec} did not return its column {c.name}", keyword=c.name)
            values = np.asarray(res[c.name])
            if values.shape != x.shape:
                raise InputError(f"plug-in {p.spec}: column {c.name} has shape {values.shape}, expected {x.shape}",
                                 keyword=c.name)
            out[c.name] = pa.array(values.astype(DTYPES[c.dtype].to_pandas_dtype(), copy=False))
    return out


def processing_fingerprint(cfg, plugins: list[Plugin]) -> str:
    """sha256 of everything that decides a frame's outputs: the processing config sections
    and each plug-in's spec and source file. A frame made under another fingerprint is redone."""
    import json

    d = cfg.to_dict()
    keep = {k: d[k] for k in ("isr", "background", "detection", "measurement", "psf", "astrometry",
                              "photometry", "refcat")}
    keep["plugins"] = [[p.spec, p.source_sha256] for p in plugins]
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()
