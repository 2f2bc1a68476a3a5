"""Benchmark: ``minidr import`` of a big Parquet catalog against pyarrow's plain Parquet write.

    .venv/bin/python benchmarks/bench_import.py [--rows 5000000] [--memory-mb 1024 256]
                                                [--partition-rows 500000] [--format parquet|csv]

Writes a Source-like input file (the release Source schema, random values, positions in a
10x10 deg field, rows in random order), then
  * plain   times pyarrow's Parquet writer (zstd, one file) writing the same rows, in the
            1M-row chunks they are generated in: pyarrow's plain write rate;
  * import  runs ``import_table`` in a child process once per ``--memory-mb`` budget
            (a small budget forces the spill + group passes), and reports its wall and CPU
            time, rows/s, the ratios to the plain write (wall and CPU; >= 1 means at least
            as fast) and the child's peak resident memory (``ru_maxrss``), with the bytes
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

from minidr.release import schema as S

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
        plain = plain_cpu = 0.0
        mem_mb = 0.0
        writer = plain_writer = None
        for i, start in enumerate(range(0, args.rows, chunk)):
            table = make_table(min(chunk, args.rows - start), seed=i, first_id=start)
            mem_mb += table.nbytes / 2**20
            if args.format == "parquet":
                writer = writer or pq.ParquetWriter(src, table.schema, compression="zstd")
                writer.write_table(table)
            else:
                with open(src, "ab") as fh:
                    pacsv.write_csv(table, fh, write_options=pacsv.WriteOptions(include_header=(i == 0)))
            t0, c0 = time.perf_counter(), time.process_time()
            plain_writer = plain_writer or pq.ParquetWriter(tmp / "plain.parquet", table.schema, compression="zstd")
            plain_writer.write_table(table)
            plain += time.perf_counter() - t0
            plain_cpu += time.process_time() - c0
            del table
        t0, c0 = time.perf_counter(), time.process_time()
        plain_writer.close()
        plain += time.perf_counter() - t0
        plain_cpu += time.process_time() - c0
        if writer is not None:
            writer.close()
        in_mb = src.stat().st_size / 2**20
        print(f"rows {args.rows:,}  input {args.format} {in_mb:.0f} MiB  (in memory {mem_mb:.0f} MiB)  cpus {os.cpu_count()}")
        print(f"plain pyarrow Parquet write zstd: {plain:6.2f} s  {plain_cpu:6.2f} s CPU  "
              f"{args.rows / plain / 1e6:6.2f} M rows/s")
        from minidr.repository import Repo

        repo = Repo.create(tmp / "repo").path
        for i, mb in enumerate(args.memory_mb):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(repo), f"B{i}", str(src), str(mb << 20), str(args.partition_rows)],
                check=True, capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"import --memory {mb:5d} MiB: {r['seconds']:6.2f} s  {r['cpu']:6.2f} s CPU"
                  f"  {args.rows / r['seconds'] / 1e6:6.2f} M rows/s"
                  f"  ratio {plain / r['seconds']:.2f} wall, {plain_cpu / r['cpu']:.2f} CPU"
                  f"  peak RSS {r['maxrss_kib'] / 2**20:.2f} GiB"
                  f"  spilled {r['spilled'] / 2**20:.0f} MiB  partitions {r['partitions']}")
            shutil.rmtree(repo / "releases" / f"B{i}", ignore_errors=True)
    finally:
        if not args.tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
