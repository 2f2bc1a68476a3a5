"""Benchmark: ``minidr import`` of a big Parquet catalog against pyarrow's plain Parquet write.

    .venv/bin/python benchmarks/bench_import.py [--rows 5000000] [--memory-mb 1024 256]
                                                [--partition-rows 500000] [--format parquet|csv]

Writes a Source-like input file (the release Source schema, random values, positions in a
10x10 deg field, rows in random order), then times two references on the same rows, in the
1M-row chunks they are generated in, each computing ``_healpix_29`` (the release's
``healpix29``) and writing it as the first column, with the codec (zstd, at its default
level) and the row group size (``release.row_group_rows``, 20000) of the release files:
  * plain   pyarrow's plain Parquet write (``pq.ParquetWriter``, pyarrow's defaults
            otherwise: dictionary encoding tried on every column, statistics of every
            column): the reference of issue 6;
  * same-options  the write with the release writer's own options (dictionary only for
            strings, footer statistics only for ``_healpix_29``, positions and the id):
            the files the import writes, minus the reading, checking, sorting and
            partitioning;
  * import  runs ``import_table`` in a child process once per ``--memory-mb`` budget
            (a small budget forces the spill + group passes), and reports its wall and CPU
            time, rows/s, the ratios to both references (wall and CPU; >= 1 means at
            least as fast) and the child's peak resident memory (``ru_maxrss``), with the bytes
            spilled. The import's CPU time includes its threads (input decoding ahead,
            partition writes, checksums); the plain write is one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from minidr.config import ReleaseConfig
from minidr.release import schema as S
from minidr.release.partition import healpix29
from minidr.release.writer import _write_options

CHILD = r"""
import json, resource, sys, time
import numpy as np
from minidr.release.importer import import_table
from minidr.release.partition import PixelCounts, argsort_healpix, healpix29
repo, name, path, budget, prows = sys.argv[1:6]
# warm-up, untimed: numba loads its cached kernels on their first call (~0.6 s, once a process)
PixelCounts(3).add(argsort_healpix(healpix29(np.zeros(2), np.zeros(2)))[1])
t0, c0 = time.perf_counter(), time.process_time()
r = import_table(repo, name, "Src", [path], id_column="sourceId", memory_budget=int(budget),
                 partition_rows=int(prows))
dt, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"seconds": dt, "cpu": cpu, "rows": r.rows, "partitions": r.partitions, "spilled": r.spilled_bytes,
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def make_table(n: int, seed: int = 0, first_id: int = 0) -> pa.Table:
    """``n`` Source-like rows; ``sourceId`` a shuffle of ``first_id .. first_id + n - 1``
    (the import checks that ids are unique across chunks)."""
    rng = np.random.default_rng(seed)
    cols, fields = [], []
    for f in S.SOURCE_SCHEMA:
        if f.name == S.HEALPIX_COLUMN:
            continue
        if f.name == "ra":
            a = rng.uniform(100, 110, n)
        elif f.name == "dec":
            a = rng.uniform(-5, 5, n)
        elif f.name == "band":
            a = pa.array(rng.choice(["g", "r", "i"], n))
        elif f.name == "sourceId":
            a = rng.permutation(n).astype(np.int64) + first_id
        elif pa.types.is_integer(f.type):
            a = rng.integers(0, 5000, n).astype(f.type.to_pandas_dtype())
        else:
            a = rng.normal(100, 10, n)
        cols.append(pa.array(a, type=f.type))
        fields.append(f)
    return pa.Table.from_arrays(cols, schema=pa.schema(fields))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--memory-mb", type=int, nargs="+", default=[1024, 256])
    ap.add_argument("--partition-rows", type=int, default=500_000)
    ap.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    ap.add_argument("--tmp", default=None, help="Scratch directory (default: a new temporary one).")
    args = ap.parse_args(argv)

    tmp = Path(args.tmp or tempfile.mkdtemp(prefix="bench_import_"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        # the input and the plain write are made chunk by chunk: the benchmark itself stays small
        chunk = 1_000_000
        src = tmp / f"input.{args.format}"
        cfg = ReleaseConfig()  # what Repo.create writes: the import's codec and row group size
        ref = {"plain": [0.0, 0.0, None], "same-options": [0.0, 0.0, None]}
        mem_mb = 0.0
        writer = None
        for i, start in enumerate(range(0, args.rows, chunk)):
            table = make_table(min(chunk, args.rows - start), seed=i, first_id=start)
            mem_mb += table.nbytes / 2**20
            if args.format == "parquet":
                writer = writer or pq.ParquetWriter(src, table.schema, compression="zstd")
                writer.write_table(table)
            else:
                with open(src, "ab") as fh:
                    pacsv.write_csv(table, fh, write_options=pacsv.WriteOptions(include_header=(i == 0)))
            for kind, acc in ref.items():
                t0, c0 = time.perf_counter(), time.process_time()
                hp = healpix29(table["ra"].to_numpy(), table["dec"].to_numpy())
                rows = table.add_column(0, S.healpix_field(), pa.array(hp))
                if acc[2] is None:
                    if kind == "plain":
                        options = {"compression": cfg.compression}
                    else:
                        options = _write_options(rows.schema, cfg.row_group_rows, cfg.compression,
                                                 stats_columns=(S.HEALPIX_COLUMN, "ra", "dec", "sourceId"))
                        for k in ("row_group_size", "sorting_columns"):  # per write; these rows are not sorted
                            options.pop(k)
                    acc[2] = pq.ParquetWriter(tmp / f"{kind}.parquet", rows.schema, **options)
                acc[2].write_table(rows, row_group_size=cfg.row_group_rows)
                acc[0] += time.perf_counter() - t0
                acc[1] += time.process_time() - c0
                del rows, hp
            del table
        for acc in ref.values():
            t0, c0 = time.perf_counter(), time.process_time()
            acc[2].close()
            acc[0] += time.perf_counter() - t0
            acc[1] += time.process_time() - c0
        if writer is not None:
            writer.close()
        in_mb = src.stat().st_size / 2**20
        print(f"rows {args.rows:,}  input {args.format} {in_mb:.0f} MiB  (in memory {mem_mb:.0f} MiB)  cpus {os.cpu_count()}")
        for kind, (wall, cpu, _) in ref.items():
            print(f"{kind + ' Parquet write + _healpix_29':40s}: {wall:6.2f} s  {cpu:6.2f} s CPU  "
                  f"{args.rows / wall / 1e6:6.2f} M rows/s  ({cfg.compression}, row groups {cfg.row_group_rows})")
        (plain, plain_cpu, _), (same, same_cpu, _) = ref["plain"], ref["same-options"]
        from minidr.repository import Repo

        repo = Repo.create(tmp / "repo").path
        for i, mb in enumerate(args.memory_mb):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(repo), f"B{i}", str(src), str(mb << 20), str(args.partition_rows)],
                check=True, capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"import --memory {mb:5d} MiB: {r['seconds']:6.2f} s  {r['cpu']:6.2f} s CPU"
                  f"  {args.rows / r['seconds'] / 1e6:6.2f} M rows/s"
                  f"  ratio to plain {plain / r['seconds']:.2f} wall, {plain_cpu / r['cpu']:.2f} CPU;"
                  f" to same-options {same / r['seconds']:.2f} wall, {same_cpu / r['cpu']:.2f} CPU"
                  f"  peak RSS {r['maxrss_kib'] / 2**20:.2f} GiB"
                  f"  spilled {r['spilled'] / 2**20:.0f} MiB  partitions {r['partitions']}")
            shutil.rmtree(repo / "releases" / f"B{i}", ignore_errors=True)
    finally:
        if not args.tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
