"""Bulk import of any catalog into a release: CSV/TSV (gzip too), Parquet, FITS tables.

The imported table becomes a first-class release table in the pipeline's layout: a HATS
catalog (``_healpix_29`` first, adaptive partitions, row groups, units and descriptions in
the field metadata) when it has positions, or one flat Parquet file (like ``Visit.parquet``)
when it has none. See docs/import.md.

Memory is bounded whatever the input size. The work runs in three passes:

1. *read*: every input file is read in batches, converted to the table's schema and
   checked row by row (a bad row names its file and line); ``_healpix_29`` is computed per
   batch, a histogram of rows per HEALPix pixel at order 12 is kept, and the batches are
   kept in memory up to ``memory_budget`` bytes, then spilled to an Arrow IPC file;
2. *plan*: partitions are planned from the histogram (the same plan as
   :func:`minidr.release.partition.plan_partitions` on the sorted rows), then grouped into
   runs of consecutive partitions that each fit the memory budget; when there is more than
   one group the spill is routed into one IPC file per group;
3. *write*: each group is read back, sorted exactly as the pipeline's writer sorts
   (``_healpix_29``, the id column, then every other column) and written one Parquet file
   per partition; ``_metadata``, ``partition_info.csv`` and ``hats.properties`` follow.

Releases are immutable. Importing into a new release name publishes a new release.
Importing into an existing release builds a complete new version of it in a staging
directory (the existing files hard-linked, never rewritten; the new table; a manifest
holding every old entry plus the new files and an ``imports`` record) and swaps it in
with one atomic ``renameat2(RENAME_EXCHANGE)``; a table the release already has is
refused. Readers holding the old release open keep reading the same bytes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import io
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pyarrow import ipc

from .._io import sha256_file
from .._memory import trim_heap
from ..errors import InputError, ReleaseError
from .ddl import TableSchema, read_schema_file
from .manifest import MANIFEST, load_manifest, manifest_text, read_properties
from .partition import Partition, PixelCounts, argsort_healpix, healpix29
from .schema import HEALPIX_COLUMN, healpix_field
from .writer import (
    MAX_ORDER,
    _clean_schema,
    _properties_text,
    _write_flat,
    _write_options,
    break_ties,
    partition_path,
)

FORMATS = ("csv", "tsv", "parquet", "fits")
DEFAULT_NULLS = ("", "\\N", "NULL", "null", "NaN", "nan")
BATCH_ROWS = 262_144
BATCHES_LABEL = "<batches>"
HIST_ORDER = MAX_ORDER  # histogram order == deepest partition order: the plan is exact
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_NUMBER = r"^\s*[-+]?(\d+\.?\d*([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?|[nN]a[nN]|[iI]nf(inity)?)\s*$"
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RA_NAMES = ("ra", "coord_ra", "ra_deg", "raj2000", "ra_icrs", "radeg", "alpha")
_DEC_NAMES = ("dec", "decl", "coord_dec", "dec_deg", "dej2000", "decj2000", "de_icrs", "dec_icrs", "dedeg", "delta")


@dataclass
class ImportReport:
    """What :func:`import_table` did."""

    release: str
    table: str
    path: Path
    rows: int
    skipped: int = 0
    partitions: int = 0
    kind: str = "hats"  # "hats" or "parquet"
    ra: str | None = None
    dec: str | None = None
    files: list[str] = field(default_factory=list)
    new_release: bool = True
    seconds: float = 0.0
    spilled_bytes: int = 0
    bad_rows: list[str] = field(default_factory=list)  # first few skipped rows, "file: line N: why"


# --------------------------------------------------------------------------- inputs


def _detect_format(path: Path, fmt: str | None) -> str:
    if fmt:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise InputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}", path=str(path))
        return fmt
    name = path.name.lower()
    for suffix in (".gz", ".bz2", ".zst"):
        name = name.removesuffix(suffix)
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".fits", ".fit", ".fts")):
        return "fits"
    if name.endswith((".tsv", ".tab")):
        return "tsv"
    if name.endswith((".csv", ".txt", ".dat")):
        return "csv"
    raise InputError("cannot tell the format from the file name; give --format csv|tsv|parquet|fits", path=str(path))


def _open_text(path: Path):
    """A binary stream of a (possibly gzip/bz2/zstd compressed) text file."""
    return pa.input_stream(str(path), compression="detect")


def _looks_numeric(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _first_line(path: Path, delimiter: str) -> list[str]:
    with _open_text(path) as fh:
        raw = b""
        while b"\n" not in raw:
            chunk = fh.read(65536)
            if not chunk:
                break
            raw += chunk
    line = raw.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r")
    import csv

    return next(csv.reader([line], delimiter=delimiter), [])


_FAIL_LOCK = threading.Lock()


class _Source:
    """One input file read in Arrow batches of the target schema, each with the line (or row)
    number of its first row; bad rows either raise or are counted and dropped."""

    def __init__(self, path: Path, fmt: str, ddl: TableSchema | None, nulls: tuple[str, ...], skip_bad: bool, bad: list):
        self.path, self.fmt, self.ddl, self.nulls, self.skip_bad = path, fmt, ddl, nulls, skip_bad
        self.bad = bad  # shared list of "file: line N: why" of skipped rows
        self.skipped = 0
        self.unit = "line" if fmt in ("csv", "tsv") else "row"
        self.fraction = 0.0  # of the file read so far (Parquet, FITS; 0 for CSV until done)

    def fail(self, number: int, why: str) -> None:
        """A bad row: raise, or count it when skipping."""
        if not self.skip_bad:
            raise InputError(f"{self.unit} {number}: {why}", path=str(self.path))
        with _FAIL_LOCK:  # the reading thread and the main thread both report bad rows
            self.skipped += 1
            if len(self.bad) < 20:
                self.bad.append(f"{self.path}: {self.unit} {number}: {why}")

    # -- CSV / TSV -----------------------------------------------------------------------

    def _csv_columns(self, delimiter: str) -> tuple[list[str], int]:
        first = _first_line(self.path, delimiter)
        if not first:
            return [], 0
        if self.ddl is not None:
            names = self.ddl.schema.names
            lower = {n.lower(): n for n in names}
            if all(f.strip().lower() in lower for f in first):
                return [lower[f.strip().lower()] for f in first], 1  # a header (any order, any case)
            if len(first) != len(names):
                if not any(_looks_numeric(f) for f in first):
                    unknown = [f for f in first if f.strip().lower() not in lower]
                    raise InputError(f"the header names column(s) {', '.join(unknown[:5])} that the schema does "
                                     "not have", path=str(self.path))
                raise InputError(f"line 1 has {len(first)} fields, the schema {len(names)} columns", path=str(self.path))
            return list(names), 0
        if any(not _looks_numeric(f) for f in first if f not in self.nulls):
            names = [f.strip() for f in first]
            if len({n.lower() for n in names}) != len(names) or any(not n for n in names):
                raise InputError("header line has empty or repeated column names", path=str(self.path))
            return names, 1
        return [f"col{i + 1}" for i in range(len(first))], 0

    def _csv_batches(self) -> Iterator[tuple[pa.RecordBatch, int]]:
        delimiter = "\t" if self.fmt == "tsv" else ","
        names, header = self._csv_columns(delimiter)
        if not names:
            return
        skipped_lines: list[int] = []
        first_error: list[str] = []

        def on_invalid(row) -> str:
            number = row.number if row.number is not None else -1
            why = f"{row.actual_columns} fields, expected {row.expected_columns}"
            if not self.skip_bad:
                first_error.append(f"line {number}: {why}")
                return "error"
            self.fail(number, why)
            skipped_lines.append(number)
            return "skip"

        def fail_parse(exc: Exception, near: int):
            if first_error:
                raise InputError(first_error[0], path=str(self.path)) from None
            raise InputError(f"near line {near}: {str(exc).splitlines()[0]}", path=str(self.path)) from None

        try:
            reader = pacsv.open_csv(
                _open_text(self.path),
                read_options=pacsv.ReadOptions(column_names=names, skip_rows=header, block_size=16 << 20,
                                               use_threads=False),
                parse_options=pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=on_invalid,
                                                 newlines_in_values=False),
                convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                     null_values=list(self.nulls), strings_can_be_null=True,
                                                     quoted_strings_can_be_null=False),
            )
        except pa.ArrowInvalid as exc:
            fail_parse(exc, header + 1)
        target = self._target_schema(names, None)
        line = header + 1
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowInvalid as exc:
                fail_parse(exc, line)
            if batch.num_rows == 0:
                continue
            if target is None:
                target = self._infer(batch)
            # rows skipped by the parser before this batch's rows shift the line numbers
            n_before = sum(1 for s in skipped_lines if s < line)
            lines = line + np.arange(batch.num_rows, dtype=np.int64)
            out = self._convert(batch, target, lines)
            yield out
            line += batch.num_rows + (len(skipped_lines) - n_before)

    def _infer(self, batch: pa.RecordBatch) -> pa.Schema:
        """Column types of a CSV without schema, from its first batch: int64 when every value
        is an integer, float64 when at least 95% are numbers (the others are then bad rows),
        else string."""
        fields = []
        for name, col in zip(batch.schema.names, batch.columns):
            typ = pa.string()
            valid = col.drop_null()
            if len(valid):
                is_int = pc.match_substring_regex(valid, r"^\s*[-+]?\d+\s*$")
                is_num = pc.match_substring_regex(valid, _NUMBER)
                if pc.all(is_int).as_py():
                    typ = pa.int64()
                elif pc.sum(is_num.cast(pa.int64())).as_py() >= 0.95 * len(valid):
                    typ = pa.float64()
            fields.append(pa.field(name, typ))
        return pa.schema(fields)

    def _target_schema(self, names: list[str], file_schema: pa.Schema | None) -> pa.Schema | None:
        if self.ddl is not None:
            by = {f.name.lower(): f for f in self.ddl.schema}
            missing = [f.name for f in self.ddl.schema if f.name.lower() not in {n.lower() for n in names}
                       and not f.nullable]
            if missing:
                raise InputError(f"NOT NULL column(s) {', '.join(missing)} of the schema are not in the file",
                                 path=str(self.path))
            extra = [n for n in names if n.lower() not in by]
            if extra:
                raise InputError(f"column(s) {', '.join(extra)} are not in the schema", path=str(self.path))
            return self.ddl.schema
        return file_schema

    def _convert(self, batch: pa.RecordBatch, target: pa.Schema, numbers: np.ndarray) -> pa.RecordBatch:
        """``batch`` cast to ``target`` (missing nullable columns filled with nulls); bad rows
        (uncastable value, NULL in a NOT NULL column) raise or are dropped."""
        n = batch.num_rows
        have = {name.lower(): i for i, name in enumerate(batch.schema.names)}
        keep = np.ones(n, dtype=bool)
        columns = []
        for f in target:
            i = have.get(f.name.lower())
            if i is None:
                columns.append(pa.nulls(n, type=f.type))
                continue
            col = batch.column(i)
            if col.type != f.type:
                try:
                    col = col.cast(f.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    col, bad = self._cast_rows(col, f)
                    for j in np.flatnonzero(bad & keep):
                        self.fail(int(numbers[j]), f"column {f.name}: cannot read {batch.column(i)[j].as_py()!r} as {f.type}")
                    keep &= ~bad
            if not f.nullable and col.null_count:
                bad = ~np.asarray(col.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
                for j in np.flatnonzero(bad & keep):
                    self.fail(int(numbers[j]), f"column {f.name} is NOT NULL but the value is missing")
                keep &= ~bad
            columns.append(col)
        out = pa.RecordBatch.from_arrays(columns, schema=target)
        if not keep.all():
            out = out.filter(pa.array(keep))
            out = out.append_column("__line", pa.array(numbers[keep]))
        else:
            out = out.append_column("__line", pa.array(numbers))
        return out

    @staticmethod
    def _cast_rows(col: pa.Array, f: pa.Field) -> tuple[pa.Array, np.ndarray]:
        """Cast value by value (only on the error path): the array with nulls where a value
        cannot be cast, and the mask of those rows."""
        values = col.to_pylist()
        out, bad = [], np.zeros(len(values), dtype=bool)
        for j, v in enumerate(values):
            if v is None:
                out.append(None)
                continue
            try:
                out.append(pa.array([v]).cast(f.type)[0].as_py())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OverflowError):
                out.append(None)
                bad[j] = True
        return pa.array(out, type=f.type), bad

    # -- Parquet -------------------------------------------------------------------------

    def _parquet_batches(self) -> Iterator[pa.RecordBatch]:
        try:
            pf = pq.ParquetFile(str(self.path))
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"not a readable Parquet file: {exc}", path=str(self.path)) from None
        schema = pf.schema_arrow
        names = [n for n in schema.names if n != HEALPIX_COLUMN and not n.startswith("__index_level_")]
        target = self._target_schema(names, pa.schema([schema.field(n) for n in names]))
        cols = [n for n in names if target.get_field_index(n) >= 0 or n.lower() in {t.lower() for t in target.names}]
        row = 1
        for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=cols, use_threads=True):
            numbers = row + np.arange(batch.num_rows, dtype=np.int64)
            yield self._convert(batch, target, numbers)
            row += batch.num_rows
            self.fraction = (row - 1) / max(1, pf.metadata.num_rows)

    # -- FITS ----------------------------------------------------------------------------

    def _fits_batches(self) -> Iterator[pa.RecordBatch]:
        import fitsio

        try:
            fits = fitsio.FITS(str(self.path))
        except OSError as exc:
            raise InputError(f"not a readable FITS file: {exc}", path=str(self.path)) from None
        with fits:
            hdu = next((h for h in fits if h.get_exttype() in ("BINARY_TBL", "ASCII_TBL")), None)
            if hdu is None:
                raise InputError("no table extension", path=str(self.path))
            hdr = hdu.read_header()
            names = hdu.get_colnames()
            meta = {}
            for i, name in enumerate(names, start=1):
                unit = str(hdr.get(f"TUNIT{i}", "") or "").strip()
                desc = str(hdr.get(f"TCOMM{i}", "") or "").strip()
                meta[name] = {b"unit": unit.encode(), b"description": desc.encode()}
            nrows = hdu.get_nrows()
            target = None if self.ddl is None else self._target_schema(names, None)
            for start in range(0, nrows, BATCH_ROWS):
                data = hdu[start: min(nrows, start + BATCH_ROWS)]
                arrays, fields = [], []
                for name in names:
                    a = np.asarray(data[name])
                    if a.dtype.byteorder == ">" or (a.dtype.byteorder == "=" and not np.little_endian):
                        a = a.astype(a.dtype.newbyteorder("="))
                    if a.dtype.kind == "S":
                        arr = pa.array(np.char.rstrip(np.char.decode(a, "ascii", errors="replace")).astype(object),
                                       type=pa.string())
                    elif a.dtype.kind == "U":
                        arr = pa.array(np.char.rstrip(a).astype(object), type=pa.string())
                    elif a.ndim > 1:
                        flat = pa.array(a.reshape(len(a), -1).ravel())
                        arr = pa.FixedSizeListArray.from_arrays(flat, int(np.prod(a.shape[1:])))
                    else:
                        arr = pa.array(a)
                    arrays.append(arr)
                    fields.append(pa.field(name, arr.type, metadata=meta[name]))
                batch = pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))
                numbers = start + 1 + np.arange(batch.num_rows, dtype=np.int64)
                yield self._convert(batch, target or batch.schema, numbers)
                self.fraction = min(nrows, start + BATCH_ROWS) / max(1, nrows)

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The file's batches; a read error of the library becomes one InputError naming the file."""
        if self.fmt in ("csv", "tsv"):
            it = self._csv_batches()
        elif self.fmt == "parquet":
            it = self._parquet_batches()
        else:
            it = self._fits_batches()
        try:
            yield from it
        except (pa.ArrowException, OSError, UnicodeDecodeError, EOFError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"cannot read {self.fmt}: {first}", path=str(self.path)) from None


class _BatchSource(_Source):
    """Record batches (or tables) handed over by a program instead of a file: the rows are
    numbered from 1 across all batches; bad rows are reported as ``<label>: row N``."""

    def __init__(self, batches, label: str, ddl: TableSchema | None, skip_bad: bool, bad: list,
                 total_rows: int | None = None):
        super().__init__(Path(label), "batches", ddl, (), skip_bad, bad)
        self.unit = "row"
        self._batches = batches
        self.total_rows = total_rows

    def batches(self) -> Iterator[pa.RecordBatch]:
        row = 1
        for item in self._batches:
            for batch in (item.to_batches() if isinstance(item, pa.Table) else [item]):
                if batch.num_rows == 0:
                    continue
                names = [n for n in batch.schema.names if not n.startswith("__index_level_")]
                target = self._target_schema(names, pa.schema([batch.schema.field(n) for n in names]))
                yield self._convert(batch, target, row + np.arange(batch.num_rows, dtype=np.int64))
                row += batch.num_rows
                if self.total_rows:
                    self.fraction = min(1.0, (row - 1) / self.total_rows)


class _UniqueIds:
    """The values of the ``--id`` column, to prove them unique once every row is read
    (8 bytes per row for integer ids; a duplicate names its value, files and lines)."""

    _NULL = np.iinfo(np.int64).min

    def __init__(self, column: str):
        self.column = column
        self.values: list = []  # per batch: int64 array (integer ids) or Arrow array
        self.where: list[tuple[str, str, int, np.ndarray | None]] = []  # (path, unit, first line, lines)

    def add(self, values: pa.Array, path: Path, unit: str, lines: np.ndarray) -> None:
        if pa.types.is_integer(values.type):
            v = _numpy(values, pa.int64(), self._NULL).copy()  # not a view keeping the batch alive
        else:
            v = values
        contiguous = lines.size == 0 or int(lines[-1] - lines[0]) == lines.size - 1
        self.values.append(v)
        self.where.append((str(path), unit, int(lines[0]) if lines.size else 0, None if contiguous else lines))

    def check(self) -> None:
        """Raise :class:`InputError` naming the first duplicated value and two of its rows."""
        if not self.values:
            return
        dup = None
        if all(isinstance(v, np.ndarray) for v in self.values):
            allv = np.concatenate(self.values)
            allv.sort()
            same = np.flatnonzero((allv[1:] == allv[:-1]) & (allv[1:] != self._NULL))
            if same.size:
                dup = int(allv[same[0]])
            del allv
        else:
            col = pa.chunked_array([pa.array(v) if isinstance(v, np.ndarray) else v for v in self.values])
            vc = pc.value_counts(col.drop_null())
            many = vc.filter(pc.greater(vc.field("counts"), 1))
            if len(many):
                dup = many.field("values")[0].as_py()
        if dup is None:
            return
        hits = []
        for v, (path, unit, first, lines) in zip(self.values, self.where):
            eq = v == dup if isinstance(v, np.ndarray) else np.asarray(
                pc.fill_null(pc.equal(v, pa.scalar(dup, v.type)), False).to_numpy(zero_copy_only=False))
            for j in np.flatnonzero(eq)[:2]:
                hits.append((path, f"{unit} {int(lines[j]) if lines is not None else first + int(j)}"))
            if len(hits) >= 2:
                break
        (p1, l1), (p2, l2) = hits[:2]
        where = f"{l1} and {l2}" if p1 == p2 else f"{l1} and {p2}: {l2}"
        raise InputError(f"--id column {self.column}: value {dup!r} is not unique ({where})", path=p1)


def _numpy(values: pa.Array, typ: pa.DataType, null) -> np.ndarray:
    """``values`` cast to ``typ`` as a numpy array, nulls replaced by ``null`` (no copy when
    the column already has the type and no nulls)."""
    if values.type != typ:
        values = values.cast(typ)
    if values.null_count:
        values = pc.fill_null(values, null)
    return np.asarray(values.to_numpy(zero_copy_only=False))


def _prefetch(batches: Iterator[pa.RecordBatch], depth: int = 2) -> Iterator[pa.RecordBatch]:
    """Run ``batches`` in a thread, ``depth`` batches ahead: decoding the next batch (pyarrow,
    GIL released) overlaps the work on this one. Errors are raised here, in order."""
    import queue

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def run():
        try:
            for b in batches:
                while not stop.is_set():
                    try:
                        q.put(b, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        t.join(5.0)


# --------------------------------------------------------------------------- positions


def _find_column(names: list[str], wanted: str | None, candidates: tuple[str, ...], what: str) -> str | None:
    lower = {n.lower(): n for n in names}
    if wanted is not None:
        if wanted.lower() not in lower:
            raise InputError(f"no {what} column {wanted!r}; columns: {', '.join(names)}", keyword=wanted)
        return lower[wanted.lower()]
    for c in candidates:
        if c in lower:
            return lower[c]
    return None


@dataclass
class _Director:
    """Positions of the rows of another release table, by key (``--partition-by T:COL``)."""

    table: str
    key: str
    ra: str
    dec: str
    keys: np.ndarray  # sorted
    ras: np.ndarray
    decs: np.ndarray

    def lookup(self, values: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ra, dec, found) of each key value."""
        v = np.asarray(pc.fill_null(values.cast(pa.int64()), -(2**62)).to_numpy(zero_copy_only=False))
        pos = np.searchsorted(self.keys, v)
        pos = np.clip(pos, 0, max(self.keys.size - 1, 0))
        found = (self.keys.size > 0) & (self.keys[pos] == v) if self.keys.size else np.zeros(v.size, dtype=bool)
        found &= np.asarray(values.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        return self.ras[pos], self.decs[pos], found


def _load_director(release: Path, spec: str) -> _Director:
    if ":" not in spec:
        raise InputError(f"--partition-by must be TABLE:COLUMN (e.g. Object:objectId), got {spec!r}")
    table, key = spec.split(":", 1)
    cat = release / table
    if not (cat / "hats.properties").is_file():
        raise InputError(f"release {release.name} has no positional table {table!r} to partition by "
                         "(import or publish it first)", keyword="--partition-by")
    props = read_properties(cat)
    ra, dec = props.get("hats_col_ra"), props.get("hats_col_dec")
    files = sorted((cat / "dataset").rglob("*.parquet"))
    schema = pq.read_schema(files[0])
    if key not in schema.names:
        raise InputError(f"table {table} has no column {key!r}", keyword="--partition-by")
    t = pa.concat_tables([pq.read_table(f, columns=[key, ra, dec]) for f in files])
    keys = t[key].cast(pa.int64()).to_numpy()
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    if keys.size > 1 and np.any(keys[1:] == keys[:-1]):
        raise InputError(f"{table}.{key} is not unique: cannot partition by it", keyword="--partition-by")
    return _Director(table, key, ra, dec, keys, t[ra].to_numpy()[order].astype(np.float64),
                     t[dec].to_numpy()[order].astype(np.float64))


# --------------------------------------------------------------------------- spill + histogram


class _Spill:
    """Batches kept in memory up to ``budget`` bytes, then appended to an IPC file."""

    def __init__(self, directory: Path, name: str, budget: int):
        self.directory, self.name, self.budget = directory, name, budget
        self.batches: list[pa.RecordBatch] = []
        self.nbytes = 0
        self.rows = 0
        self.path: Path | None = None
        self.writer = None
        self.schema: pa.Schema | None = None
        self.spilled = 0

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        if self.schema is None:
            self.schema = batch.schema
        elif not batch.schema.equals(self.schema):
            batch = pa.RecordBatch.from_arrays(batch.columns, schema=self.schema)
        self.rows += batch.num_rows
        if self.writer is not None:
            self.writer.write_batch(batch)
            self.spilled += batch.nbytes
            return
        self.batches.append(batch)
        self.nbytes += batch.nbytes
        if self.nbytes > self.budget:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.path = self.directory / f"{self.name}.arrow"
            self.writer = ipc.new_file(str(self.path), self.schema)
            for b in self.batches:
                self.writer.write_batch(b)
                self.spilled += b.nbytes
            self.batches = []
            self.nbytes = 0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def iter_batches(self) -> Iterator[pa.RecordBatch]:
        if self.path is None:
            yield from self.batches
            return
        # read, not mapped: a mapping of the whole spill would keep every page read resident
        with pa.OSFile(str(self.path)) as src:
            reader = ipc.open_file(src)
            for i in range(reader.num_record_batches):
                yield reader.get_batch(i)

    def table(self) -> pa.Table:
        """The rows kept in memory (only when nothing was spilled)."""
        assert self.path is None
        return pa.Table.from_batches(self.batches, schema=self.schema)

    def load_contiguous(self, path: Path | None = None) -> pa.Table:
        """The rows kept in memory (handed over: the spill keeps none), or those of the IPC
        file ``path``, as a table of one chunk per column. The copy is made column by column,
        so it needs one column more than the rows, not twice the rows: in memory, each
        column's chunks are released once copied; from a file, each column is copied out of
        its own memory mapping of the file, unmapped once copied (a mapping of the whole file
        would keep every page read resident until the last column is copied). In this
        thread: copies made by threads that then exit stay with their allocator heaps (the
        50M-row build peaked at 4.44 GiB with the copies made by two threads). (Arrow's take on a chunked column concatenates
        its chunks on every call: gathering each partition from the chunks would copy the
        rows once per partition.)"""
        schema = self.schema
        out = []
        if path is None:
            table = pa.Table.from_batches(self.batches, schema=schema)
            self.batches, self.nbytes = [], 0
            columns = table.columns
            del table
            for j in range(len(columns)):
                col, columns[j] = columns[j], None
                out.append(col.chunk(0) if col.num_chunks == 1 else col.combine_chunks())
                del col
        else:
            for j in range(len(schema)):
                with pa.memory_map(str(path)) as src:
                    options = ipc.IpcReadOptions(included_fields=[j], use_threads=False)
                    chunks = ipc.open_file(src, options=options).read_all().column(0).chunks
                    out.append(pa.concat_arrays(chunks))  # a copy (also of one chunk): nothing left mapped
                    del chunks
        return pa.Table.from_arrays(out, schema=schema)

    def remove(self) -> None:
        self.close()
        self.batches = []
        if self.path is not None and self.path.exists():
            self.path.unlink()


def plan_from_counts(pixels: np.ndarray, counts: np.ndarray, max_rows: int, max_order: int = MAX_ORDER,
                     hist_order: int = HIST_ORDER) -> list[Partition]:
    """The partition plan of :func:`~minidr.release.partition.plan_partitions` from a histogram
    of rows per pixel at ``hist_order`` (>= ``max_order``): same pixels, same row ranges."""
    pixels = np.asarray(pixels, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    csum = np.concatenate(([0], np.cumsum(counts)))
    out: list[Partition] = []

    def split(order: int, lo: int, hi: int) -> None:
        shift = 2 * (hist_order - order)
        keys = pixels[lo:hi] >> shift
        cut = np.flatnonzero(keys[1:] != keys[:-1]) + 1
        starts = np.concatenate(([0], cut)) + lo
        stops = np.concatenate((cut, [hi - lo])) + lo
        for s, e in zip(starts.tolist(), stops.tolist()):
            n = int(csum[e] - csum[s])
            if n <= max_rows or order >= max_order:
                out.append(Partition(order, int(pixels[s] >> shift), int(csum[s]), int(csum[e])))
            else:
                split(order + 1, s, e)

    if pixels.size:
        split(0, 0, pixels.size)
    return out


# --------------------------------------------------------------------------- release plumbing


def _renameat2_exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), exchange) == 0


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link every file of ``src`` under ``dst`` (copy where links are impossible)."""
    for p in sorted(src.rglob("*")):
        rel = p.relative_to(src)
        if rel.as_posix() == MANIFEST:
            continue
        target = dst / rel
        if p.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif p.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(p, target)
            except OSError:
                shutil.copy2(p, target)


def _entries(root: Path, known: dict[str, dict]) -> list[dict]:
    """Manifest entries (path, sha256, size) of every file under ``root``; ``known`` holds
    digests already computed (by the partition-writing threads), keyed by path below the table."""
    out = []
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        rel = str(p.relative_to(root)).replace(os.sep, "/")
        d = known.get(rel.split("/", 1)[1] if "/" in rel else rel)
        if d is None or d["size"] != p.stat().st_size:
            d = {"sha256": sha256_file(p), "size": p.stat().st_size}
        out.append({"path": rel, **d})
    return sorted(out, key=lambda e: e["path"])


def _remove_stale(parent: Path, name: str) -> None:
    """Remove ``.NAME.import-PID`` / ``.NAME.replaced-PID`` left by imports that no longer run."""
    for p in list(parent.glob(f".{name}.import-*")) + list(parent.glob(f".{name}.replaced-*")):
        try:
            pid = int(p.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        if p.name.startswith(f".{name}.replaced-") and not (parent / name).exists():
            os.rename(p, parent / name)  # a swap interrupted between its two renames: put the release back
            continue
        shutil.rmtree(p, ignore_errors=True)


def _release_settings(repo: Path) -> tuple[int, int, str]:
    from ..config import ReleaseConfig, load
    from ..repo.layout import config_path

    cfg = ReleaseConfig()
    if config_path(repo).is_file():
        cfg = load(config_path(repo)).release
    return cfg.partition_rows, cfg.row_group_rows, cfg.compression


def _input_entry(path: Path) -> dict:
    return {"path": str(path.resolve()), "sha256": sha256_file(path), "size": path.stat().st_size}


class _HashingFile(io.RawIOBase):
    """A new file opened for writing that computes the sha256 and size of what is written to
    it (hashlib releases the GIL on large blocks): no second read of the file."""

    def __init__(self, path: Path):
        super().__init__()
        self._fh = open(path, "wb")
        self._sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._sha.update(data)
        self.size += memoryview(data).nbytes
        return self._fh.write(data)

    def close(self) -> None:
        if not self.closed:
            self._fh.close()
        super().close()

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def _partition_rows(hp: np.ndarray, parts: list[Partition]) -> list[np.ndarray]:
    """Row indices (ascending) of each of ``parts`` (consecutive partitions) among rows whose
    ``_healpix_29`` values are ``hp``: one pass, then a stable counting sort of the partition
    numbers."""
    lo29 = np.asarray([p.range29()[0] for p in parts], dtype=np.int64)
    which = np.searchsorted(lo29, hp, side="right") - 1
    which = which.astype(np.uint16 if len(parts) < 65536 else np.int64)
    by_part = np.argsort(which, kind="stable")  # a radix sort for 16-bit keys
    cuts = np.cumsum([p.n_rows for p in parts])
    if cuts[-1] != hp.size or (which.size and int(which.min()) < 0):
        raise ReleaseError(f"internal: {hp.size} rows read back for partitions of {int(cuts[-1])} rows")
    return np.split(by_part, cuts[:-1])


def _partition_order(table: pa.Table, hp: np.ndarray, rows: np.ndarray, sort_columns: tuple[str, ...]) -> np.ndarray:
    """The indices ``rows`` of one partition's rows in ``table`` (whose ``_healpix_29`` values
    are ``hp``) in the order of :func:`~minidr.release.writer._row_order` (``_healpix_29``,
    ``sort_columns``, every other column): the order of the whole table sorted, restricted
    to this partition (a partition is a ``_healpix_29`` range)."""
    if rows.size < 2:
        return rows
    o, hs = argsort_healpix(hp[rows])
    return break_ties(table, rows[o], hs, sort_columns)


def _write_catalog(spill: _Spill, hist: PixelCounts, directory: Path, *, name: str, ra: str, dec: str,
                   sort_columns: tuple[str, ...], partition_rows: int, row_group_rows: int, compression: str,
                   budget: int, progress: Callable[[str, float], None], jobs: int = 2) -> tuple[list[Partition], list[str]]:
    """Passes 2 and 3: plan partitions from the histogram, group them, write them."""
    pixels, counts = hist.result()
    partitions = plan_from_counts(pixels, counts, partition_rows)
    total = spill.rows
    row_bytes = max(1.0, (spill.nbytes + spill.spilled) / max(total, 1))
    # a group is held once, plus one column per thread while it is made contiguous, then one
    # partition per writing thread; spilled rows come back in groups of half the budget (the
    # rows kept in memory are there already)
    group_rows = max(partition_rows, int((budget if spill.path is None else budget / 2) / row_bytes))
    groups: list[list[int]] = [[]]
    acc = 0
    for i, p in enumerate(partitions):
        if groups[-1] and acc + p.n_rows > group_rows:
            groups.append([])
            acc = 0
        groups[-1].append(i)
        acc += p.n_rows

    tmp = directory.parent / f".{name}.groups"
    group_files: list[Path] = []
    if len(groups) > 1:
        # pass 2: route every row to the file of its group
        tmp.mkdir(parents=True, exist_ok=True)
        lo29 = np.asarray([p.range29()[0] for p in partitions], dtype=np.int64)
        part_group = np.zeros(len(partitions), dtype=np.int64)
        for g, idx in enumerate(groups):
            part_group[idx] = g
        writers = []
        for g in range(len(groups)):
            group_files.append(tmp / f"g{g:05d}.arrow")
            writers.append(ipc.new_file(str(group_files[-1]), spill.schema))
        done = 0
        for batch in spill.iter_batches():
            hp = batch.column(0).to_numpy()
            g_of = part_group[np.searchsorted(lo29, hp, side="right") - 1]
            order = np.argsort(g_of, kind="stable")
            gs = g_of[order]
            cuts = np.flatnonzero(gs[1:] != gs[:-1]) + 1
            for s, e in zip(np.concatenate(([0], cuts)), np.concatenate((cuts, [gs.size]))):
                writers[int(gs[s])].write_batch(batch.take(pa.array(order[s:e])))
            done += batch.num_rows
            progress("group", done / max(total, 1))
        for w in writers:
            w.close()
        spill.remove()
        pa.default_memory_pool().release_unused()

    options = None
    metas: dict[int, pq.FileMetaData] = {}
    digests: dict[str, dict] = {}
    written = 0
    for g, idx in enumerate(groups):
        # each thread gathers its own partition's rows from the group's contiguous columns
        table = _clean_schema(spill.load_contiguous(group_files[g] if group_files else None))
        if options is None:
            options = _write_options(table.schema, row_group_rows, compression,
                                     stats_columns=(HEALPIX_COLUMN, ra, dec, *sort_columns))
            common_schema = table.schema
        hp = table[HEALPIX_COLUMN].to_numpy()
        members = _partition_rows(hp, [partitions[i] for i in idx])

        def work(k: int, table=table, hp=hp, members=members, options=options) -> pq.FileMetaData:
            p = partitions[idx[k]]
            order = _partition_order(table, hp, members[k], sort_columns)
            if order.size and int(order[-1] - order[0]) == order.size - 1 and bool(np.all(order[1:] > order[:-1])):
                rows = table.slice(int(order[0]), order.size)  # already in order
            else:
                rows = table.take(pa.array(order))
            rel = partition_path(p.order, p.pixel)
            path = directory / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            collected: list[pq.FileMetaData] = []
            with _HashingFile(path) as fh:  # checksummed as written, in this thread
                pq.write_table(rows, fh, metadata_collector=collected, **options)
            digests[rel] = {"sha256": fh.hexdigest(), "size": fh.size}
            meta = collected[0]
            meta.set_file_path(rel[len("dataset/"):])
            return meta

        # largest partitions first keeps the threads busy; the bytes do not depend on the order
        with ThreadPoolExecutor(max(1, min(jobs, len(idx)))) as pool:
            futures = {k: pool.submit(work, k) for k in sorted(range(len(idx)), key=lambda k: -partitions[idx[k]].n_rows)}
            for k, i in enumerate(idx):
                metas[i] = futures[k].result()
                written += partitions[i].n_rows
                progress("write", written / max(total, 1))
        del table, hp, members
        if group_files:
            group_files[g].unlink()
        pa.default_memory_pool().release_unused()
    shutil.rmtree(tmp, ignore_errors=True)
    spill.remove()

    dataset = directory / "dataset"
    dataset.mkdir(parents=True, exist_ok=True)
    pq.write_metadata(common_schema, dataset / "_common_metadata")
    pq.write_metadata(common_schema, dataset / "_metadata", metadata_collector=[metas[i] for i in range(len(partitions))])
    lines = ["Norder,Npix"] + [f"{p.order},{p.pixel}" for p in sorted(partitions, key=lambda q: (q.order, q.pixel))]
    (directory / "partition_info.csv").write_text("\n".join(lines) + "\n")
    est_kb = sum((directory / partition_path(p.order, p.pixel)).stat().st_size for p in partitions) // 1024
    catalog_type = "source" if "source" in name.lower() else "object"
    (directory / "hats.properties").write_text(_properties_text(
        name=name, catalog_type=catalog_type, n_rows=total, ra_column=ra, dec_column=dec,
        max_rows=int(partition_rows), partitions=partitions, est_kb=est_kb))
    files = sorted(str(p.relative_to(directory)).replace(os.sep, "/") for p in directory.rglob("*") if p.is_file())
    return partitions, files, digests


def _write_unpartitioned(spill: _Spill, path: Path, sort_columns: tuple[str, ...], row_group_rows: int,
                         compression: str) -> None:
    """One flat Parquet file: sorted (deterministic) when it fits in memory, else in input order."""
    if spill.path is None:
        table = spill.table()
        table = table.drop_columns(["__line"]) if "__line" in table.column_names else table
        _write_flat(table, path, sort_columns, row_group_rows, compression)
        return
    schema = _clean_schema(pa.Table.from_batches([], schema=spill.schema)).schema
    options = _write_options(schema, row_group_rows, compression)
    options.pop("sorting_columns")
    options.pop("row_group_size")
    with pq.ParquetWriter(str(path), schema, **options) as w:
        for b in spill.iter_batches():
            b = b.drop_columns(["__line"]) if "__line" in b.schema.names else b
            w.write_table(pa.Table.from_batches([pa.RecordBatch.from_arrays(b.columns, schema=schema)]),
                          row_group_size=max(1, int(row_group_rows)))


# --------------------------------------------------------------------------- the import


def import_table(
    repo_path,
    release_name: str,
    table_name: str,
    files,
    *,
    ra: str | None = None,
    dec: str | None = None,
    id_column: str | None = None,
    schema=None,
    fmt: str | None = None,
    null: str | list[str] | None = None,
    skip_bad: bool = False,
    partition_by: str | None = None,
    progress: Callable[[str, float], None] | None = None,
    memory_budget: int = 1 << 30,
    partition_rows: int | None = None,
    row_group_rows: int | None = None,
    batches: Iterable[pa.RecordBatch | pa.Table] | None = None,
    total_rows: int | None = None,
) -> ImportReport:
    """Import the catalog in ``files`` as table ``table_name`` of release ``release_name``.

    ``ra``/``dec``: position columns [deg] (default: guessed from usual names such as
    ``ra``/``dec``, ``coord_ra``/``coord_dec``, ``RAJ2000``/``DEJ2000``; without positions
    the table is written unpartitioned as ``TABLE.parquet``). ``id_column`` sorts rows
    within a sky pixel (default: the schema's primary key). ``schema``: a file (or text)
    holding a MySQL ``CREATE TABLE``, or a :class:`pyarrow.Schema`; default: the file's own
    schema (Parquet, FITS, CSV header) or inferred types. ``null``: extra NULL token(s) of
    CSV/TSV (``\\N``, ``NULL`` and the empty field always are). ``skip_bad``: count and skip
    bad rows instead of stopping at the first. ``partition_by="Object:objectId"``: partition
    by the position of the row of that table of the same release with the same key (the
    position columns are added, named as in that table). ``progress(stage, fraction)`` is
    called as work advances. ``memory_budget`` bounds the bytes of rows held in memory;
    ``partition_rows`` and ``row_group_rows`` override the repository's ``release.partition_rows``
    and ``release.row_group_rows``.

    ``batches``: instead of files (``files`` then empty), an iterable of Arrow record batches
    or tables produced by a program (a generator streams any number of rows; ``total_rows``,
    if known, drives the progress bar); see :func:`import_batches`.

    ``id_column`` values must be unique: a repeated value stops the import (also with
    ``skip_bad``: which of the two rows is the bad one cannot be told) naming the value, its
    file(s) and line(s).

    Nothing is published unless every file is read and written without error.
    """
    t0 = time.perf_counter()
    progress = progress or (lambda stage, fraction: None)
    repo = Path(repo_path)
    from ..errors import RepoError
    from ..repo.layout import CONFIG, REGISTRY, config_path, registry_path

    if not repo.is_dir():
        raise RepoError(f"{repo}: no such repository (create it with 'minidr init')")
    if not config_path(repo).is_file() or not registry_path(repo).is_file():
        raise RepoError(f"{repo}: not a minidr repository (no {CONFIG} and {REGISTRY})")
    if not _NAME.match(str(release_name)):
        raise ReleaseError(f"bad release name {release_name!r}: use letters, digits, '_', '.', '-'")
    if not _TABLE.match(str(table_name)) or table_name.lower() == "manifest":
        raise InputError(f"bad table name {table_name!r}: use letters, digits and '_' (not starting with a digit)")
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    paths = [Path(f) for f in files]
    if batches is not None:
        if paths:
            raise InputError("give either input files or batches, not both")
        if isinstance(batches, (pa.RecordBatch, pa.Table)):
            batches = [batches]
    elif not paths:
        raise InputError("no input files")
    for p in paths:
        if not p.is_file():
            raise InputError("no such file", path=str(p))
    formats = [_detect_format(p, fmt) for p in paths]
    if partition_by and (ra or dec):
        raise InputError("give either --ra/--dec or --partition-by, not both")
    if bool(ra) != bool(dec):
        raise InputError("give both --ra and --dec")

    ddl: TableSchema | None = None
    schema_entry = None
    if isinstance(schema, pa.Schema):
        ddl = TableSchema(name=table_name, schema=schema)
    elif schema is not None:
        sp = Path(str(schema))
        if sp.is_file():
            ddl = read_schema_file(sp, table_name)
            schema_entry = _input_entry(sp)
        elif "create" in str(schema).lower():
            from .ddl import parse_create_table

            ddl = parse_create_table(str(schema), table_name)
        else:
            raise InputError("no such schema file", path=str(schema))
    if id_column is None and ddl is not None and len(ddl.primary_key) == 1:
        id_column = ddl.primary_key[0]

    nulls = DEFAULT_NULLS
    if null is not None:
        extra = [null] if isinstance(null, str) else list(null)
        nulls = tuple(dict.fromkeys(list(DEFAULT_NULLS) + extra))

    from ..repo.layout import release_dir, releases_dir

    final = release_dir(repo, release_name)
    base_manifest = None
    if final.exists():
        base_manifest = load_manifest(final)
        tables = (base_manifest.get("outputs") or {}).get("tables") or {}
        existing = {t.lower() for t in tables} | {p.name.lower() for p in final.iterdir() if p.is_dir()} | {
            p.stem.lower() for p in final.glob("*.parquet")}
        if table_name.lower() in existing:
            raise ReleaseError(f"release {release_name} already has a table {table_name}; releases are immutable: "
                               "import into a new release name")
    cfg_rows, cfg_rg_rows, compression = _release_settings(repo)
    partition_rows = int(partition_rows) if partition_rows else cfg_rows
    row_group_rows = int(row_group_rows) if row_group_rows else cfg_rg_rows
    if partition_rows < 1:
        raise InputError("partition_rows must be >= 1")

    director = None
    if partition_by:
        if base_manifest is None:
            raise InputError(f"--partition-by {partition_by}: release {release_name} does not exist yet; "
                             "import the table it refers to first")
        director = _load_director(final, partition_by)

    parent = releases_dir(repo)
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(parent, release_name)
    staging = parent / f".{release_name}.import-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    from ..repo.lock import repo_lock

    try:
        with repo_lock(repo):
            return _run(
            staging=staging, final=final, release_name=release_name, table_name=table_name, paths=paths,
            formats=formats, ddl=ddl, nulls=nulls, skip_bad=skip_bad, ra=ra, dec=dec, id_column=id_column,
            director=director, partition_by=partition_by, base_manifest=base_manifest, schema_entry=schema_entry,
            partition_rows=partition_rows, row_group_rows=row_group_rows, compression=compression,
            budget=int(memory_budget), progress=progress, t0=t0, batches=batches, total_rows=total_rows,
            )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _run(*, staging, final, release_name, table_name, paths, formats, ddl, nulls, skip_bad, ra, dec, id_column,
         director, partition_by, base_manifest, schema_entry, partition_rows, row_group_rows, compression,
         budget, progress, t0, batches, total_rows) -> ImportReport:
    bad: list[str] = []
    # checksums of the inputs (for the manifest) are computed beside the import, not after it
    hasher = ThreadPoolExecutor(1)
    input_entries = hasher.submit(lambda files=tuple(paths): [_input_entry(p) for p in files])
    hasher.shutdown(wait=False)
    spill = _Spill(staging / ".spill", table_name, budget)
    hist = PixelCounts(HIST_ORDER)
    ids: _UniqueIds | None = None
    if batches is not None:  # one input: the program's batches
        paths, formats, sizes = [Path(BATCHES_LABEL)], ["batches"], [1]
    else:
        sizes = [p.stat().st_size for p in paths]
    total_bytes = max(1, sum(sizes))
    done_bytes = 0
    skipped = 0
    positional = None  # decided on the first batch
    ra_col = dec_col = None
    id_col = None
    schema0: pa.Schema | None = None
    for path, fmt, size in zip(paths, formats, sizes):
        if batches is not None:
            src = _BatchSource(batches, BATCHES_LABEL, ddl, skip_bad, bad, total_rows)
        else:
            src = _Source(path, fmt, ddl, nulls, skip_bad, bad)
        for batch in _prefetch(src.batches()):
            if HEALPIX_COLUMN in batch.schema.names:  # recomputed from the positions
                batch = batch.drop_columns([HEALPIX_COLUMN])
            names = [n for n in batch.schema.names if n != "__line"]
            if schema0 is None:
                schema0 = pa.schema([batch.schema.field(n) for n in names])
                if director is not None:
                    key = _find_column(names, director.key, (), "--partition-by key")
                    for c in (director.ra, director.dec):
                        if c.lower() in {n.lower() for n in names}:
                            raise InputError(f"the table already has a column {c!r}; it cannot take the "
                                             f"{director.table} position", keyword="--partition-by")
                    ra_col, dec_col, positional = director.ra, director.dec, True
                    director_key = key
                else:
                    ra_col = _find_column(names, ra, _RA_NAMES, "RA")
                    dec_col = _find_column(names, dec, _DEC_NAMES, "Dec")
                    positional = ra_col is not None and dec_col is not None
                    for c in (ra_col, dec_col):
                        if c is not None:
                            t = batch.schema.field(c).type
                            if not (pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t)):
                                raise InputError(f"position column must be numeric degrees, not {t}",
                                                 path=str(path), keyword=c)
                if id_column is not None:
                    id_col = _find_column(names, id_column, (), "id")
                    ids = _UniqueIds(id_col)
            elif [n for n in batch.schema.names if n != "__line"] != schema0.names:
                raise InputError(f"columns differ from those of {paths[0]}", path=str(path))
            elif batch.schema.field(0).type != schema0.field(0).type or any(
                    batch.schema.field(n).type != schema0.field(n).type for n in names):
                casted = [batch.column(n).cast(schema0.field(n).type) for n in names] + [batch.column("__line")]
                batch = pa.RecordBatch.from_arrays(casted, names=names + ["__line"])
            if positional:
                lines = batch.column("__line").to_numpy()
                if director is not None:
                    r, d, found = director.lookup(batch.column(director_key))
                    keep = found
                    for j in np.flatnonzero(~found):
                        src.fail(int(lines[j]), f"{director_key} {batch.column(director_key)[j].as_py()} is not in "
                                                f"{director.table}")
                    batch = batch.append_column(pa.field(director.ra, pa.float64(),
                                                         metadata={b"unit": b"deg", b"description":
                                                                   f"right ascension of the {director.table} row "
                                                                   f"(partitioning position)".encode()}),
                                                pa.array(r))
                    batch = batch.append_column(pa.field(director.dec, pa.float64(),
                                                         metadata={b"unit": b"deg", b"description":
                                                                   f"declination of the {director.table} row "
                                                                   f"(partitioning position)".encode()}),
                                                pa.array(d))
                else:
                    rcol, dcol = batch.column(ra_col), batch.column(dec_col)
                    r, d = _numpy(rcol, pa.float64(), np.nan), _numpy(dcol, pa.float64(), np.nan)
                    keep = np.isfinite(r) & np.isfinite(d) & (np.abs(d) <= 90.0)
                    for j in np.flatnonzero(~keep):
                        src.fail(int(lines[j]), f"bad position {ra_col}={rcol[j].as_py()!r} {dec_col}={dcol[j].as_py()!r}")
                if not keep.all():
                    batch = batch.filter(pa.array(keep))
                    r, d = r[keep], d[keep]
                hp = healpix29(r, d)
                hist.add(hp)
                batch = pa.RecordBatch.from_arrays(
                    [pa.array(hp, type=pa.int64())] + list(batch.columns),
                    schema=pa.schema([healpix_field()] + list(batch.schema)))
            if ids is not None:
                ids.add(batch.column(id_col), src.path, src.unit, batch.column("__line").to_numpy())
            spill.add(batch.drop_columns(["__line"]))  # line numbers are needed only up to here
            progress("read", min(1.0, (done_bytes + size * src.fraction) / total_bytes))
        skipped += src.skipped
        done_bytes += size
        progress("read", done_bytes / total_bytes)
    spill.close()
    pa.default_memory_pool().release_unused()  # the spilled batches' memory back to the system
    if ids is not None:
        ids.check()
        del ids
        trim_heap()  # the ids' 8 bytes per row back to the system before the write pass
    if schema0 is None:
        if ddl is None:
            raise InputError("the input files hold no rows and no schema was given")
        schema0 = ddl.schema
        ra_col = _find_column(schema0.names, ra, _RA_NAMES, "RA") if director is None else None
        dec_col = _find_column(schema0.names, dec, _DEC_NAMES, "Dec") if director is None else None
        positional = ra_col is not None and dec_col is not None
    if spill.rows == 0:
        raise InputError(f"no rows to import ({skipped} bad rows skipped)" if skipped else "no rows to import",
                         path=str(paths[0]))
    if id_col is not None and spill.schema is not None:
        idc = id_col
    else:
        idc = None

    report = ImportReport(release=release_name, table=table_name, path=final, rows=spill.rows, skipped=skipped,
                          new_release=base_manifest is None, bad_rows=bad, spilled_bytes=spill.spilled)
    sort_columns = (idc,) if idc else ()
    if positional:
        cat_dir = staging / table_name
        cat_dir.mkdir()
        partitions, files, digests = _write_catalog(
            spill, hist, cat_dir, name=table_name, ra=ra_col, dec=dec_col, sort_columns=sort_columns,
            partition_rows=partition_rows, row_group_rows=row_group_rows, compression=compression,
            budget=budget, progress=progress, jobs=min(4, os.cpu_count() or 1))
        shutil.rmtree(staging / ".spill", ignore_errors=True)
        report.kind, report.partitions, report.ra, report.dec = "hats", len(partitions), ra_col, dec_col
        report.files = [f"{table_name}/{f}" for f in files]
        table_info = {"format": "hats", "path": table_name, "rows": spill.rows, "partitions": len(partitions),
                      "max_order": max((p.order for p in partitions), default=0)}
    else:
        _write_unpartitioned(spill, staging / f"{table_name}.parquet", sort_columns, row_group_rows, compression)
        spill.remove()
        shutil.rmtree(staging / ".spill", ignore_errors=True)
        report.kind, report.files = "parquet", [f"{table_name}.parquet"]
        digests = {}
        table_info = {"format": "parquet", "path": f"{table_name}.parquet", "rows": spill.rows}

    # manifest: a new release, or the old one's entries plus the new table's
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    record = {
        "table": table_name, "created": now, "inputs": input_entries.result(),
        "formats": sorted(set(formats)), "schema": schema_entry, "ra": ra_col, "dec": dec_col,
        "id": idc, "partition_by": partition_by, "rows": spill.rows, "skipped": skipped,
    }
    new_entries = _entries(staging, digests)
    if base_manifest is None:
        from .. import __version__

        doc = {"name": release_name, "software": {"name": "minidr", "version": __version__}, "created": now,
               "imports": [record], "outputs": {"files": new_entries, "tables": {table_name: table_info}}}
    else:
        doc = {k: v for k, v in base_manifest.items() if k != "manifest_sha256"}
        outputs = dict(doc.get("outputs") or {})
        files_old = list(outputs.get("files") or [])
        outputs["files"] = sorted(files_old + new_entries, key=lambda e: e["path"])
        outputs["tables"] = {**(outputs.get("tables") or {}), table_name: table_info}
        doc["outputs"] = outputs
        doc["imports"] = list(doc.get("imports") or []) + [record]
        doc["previous_manifest_sha256"] = base_manifest.get("manifest_sha256")
        doc["modified"] = now
        _link_tree(final, staging)
    (staging / MANIFEST).write_text(manifest_text(doc))
    for p in staging.rglob("*"):
        if p.is_file():
            p.chmod(0o444)
    progress("publish", 1.0)
    if base_manifest is None:
        if final.exists():
            raise ReleaseError(f"release {release_name} appeared while importing; nothing published")
        os.rename(staging, final)
        from ..repo.registry import Registry

        Registry(final.parent.parent).record_release(
            release_name, str(final), spill.rows if table_name == "Object" else 0,
            spill.rows if table_name == "Source" else 0)
    else:
        now_sha = load_manifest(final).get("manifest_sha256") if final.exists() else None
        if now_sha != base_manifest.get("manifest_sha256"):
            raise ReleaseError(f"release {release_name} changed while importing (another import?); nothing published")
        if not _renameat2_exchange(staging, final):
            old = final.parent / f".{release_name}.replaced-{os.getpid()}"
            os.rename(final, old)
            os.rename(staging, final)
            staging = old
        shutil.rmtree(staging, ignore_errors=True)
    report.seconds = time.perf_counter() - t0
    return report


def import_batches(repo_path, release_name: str, table_name: str, batches, **options) -> ImportReport:
    """Import the rows of ``batches`` (an iterable, e.g. a generator, of Arrow record batches or
    tables of one schema) as table ``table_name`` of release ``release_name``: the streaming
    path of :func:`import_table` (same checks, same layout, memory bounded by
    ``memory_budget`` whatever the number of rows), fed by a program instead of files. Bad
    rows are reported as ``<batches>: row N`` (N counted from 1 across all batches).
    ``options`` are those of :func:`import_table`."""
    return import_table(repo_path, release_name, table_name, [], batches=batches, **options)


__all__ = ["ImportReport", "import_batches", "import_table", "plan_from_counts"]
