"""Benchmark: the HATS writer against pyarrow's own Parquet writer on the same rows.

    .venv/bin/python benchmarks/bench_release.py [--rows 5000000] [--partition-rows 500000] [--repeat 1]
                                                 [--order random|sky] [--jobs N]

Builds a Source-like table (the release Source schema, random values, positions in a
10x10 deg field), then times
  * plain   ``pq.write_table(table, file, compression=zstd)`` (one file, pyarrow defaults), and
  * minidr  ``write_hats_catalog``: _healpix_29 computation, sort, partition plan,
            one file per partition, _metadata, _common_metadata, properties.
Prints rows/s of both and their ratio (>= 1 means the writer is at least as fast).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from bench_import import make_table  # the same Source-like rows as the import benchmark

from minidr.release.writer import write_hats_catalog


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--partition-rows", type=int, default=500_000)
    ap.add_argument("--row-group-rows", type=int, default=20_000)
    ap.add_argument("--compression", default="zstd")
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--order", choices=("random", "sky"), default="random",
                    help="input row order: random (worst case) or already in _healpix_29 order "
                         "(as the association stage hands over Object)")
    args = ap.parse_args()

    t0 = time.perf_counter()
    table = make_table(args.rows)
    if args.order == "sky":
        from minidr.sky.healpix import healpix29

        hp = healpix29(table["ra"].to_numpy(), table["dec"].to_numpy())
        table = table.take(np.argsort(hp, kind="stable"))
    print(f"table: {table.num_rows} rows, {table.num_columns} columns, {table.nbytes / 1e6:.0f} MB in memory "
          f"(built in {time.perf_counter() - t0:.1f} s)")
    tmp = Path(tempfile.mkdtemp(prefix="bench_release_"))
    # warm-up, untimed: numba loads its cached kernels on their first call (~0.6 s, once a process)
    write_hats_catalog(table.slice(0, 1000), tmp / "warmup", name="Source", ra_column="ra", dec_column="dec",
                       partition_rows=args.partition_rows, sort_columns=("sourceId",))
    shutil.rmtree(tmp / "warmup")
    try:
        best_plain = best_hats = cpu_plain = cpu_hats = float("inf")
        for r in range(args.repeat):
            f = tmp / f"plain{r}.parquet"
            t0, c0 = time.perf_counter(), time.process_time()
            pq.write_table(table, f, compression=args.compression)
            best_plain = min(best_plain, time.perf_counter() - t0)
            cpu_plain = min(cpu_plain, time.process_time() - c0)
            plain_size = f.stat().st_size
            f.unlink()

            d = tmp / f"hats{r}"
            t0, c0 = time.perf_counter(), time.process_time()
            info = write_hats_catalog(table, d, name="Source", ra_column="ra", dec_column="dec",
                                      partition_rows=args.partition_rows, row_group_rows=args.row_group_rows,
                                      compression=args.compression, sort_columns=("sourceId",), jobs=args.jobs)
            best_hats = min(best_hats, time.perf_counter() - t0)
            cpu_hats = min(cpu_hats, time.process_time() - c0)
            hats_size = sum((d / p).stat().st_size for p in info.files)
            shutil.rmtree(d)
        n = table.num_rows
        print(f"pq.write_table     : {best_plain:6.2f} s wall  {cpu_plain:6.2f} s CPU  {n / best_plain / 1e6:6.2f} Mrows/s"
              f"  {plain_size / 1e6:7.1f} MB")
        print(f"write_hats_catalog : {best_hats:6.2f} s wall  {cpu_hats:6.2f} s CPU  {n / best_hats / 1e6:6.2f} Mrows/s"
              f"  {hats_size / 1e6:7.1f} MB"
              f"  ({len(info.partitions)} partitions, max order {info.max_order})")
        print(f"ratio (writer rate / pyarrow rate): {best_plain / best_hats:.2f} wall, "
              f"{cpu_plain / cpu_hats:.2f} CPU; machine load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
