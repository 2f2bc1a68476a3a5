"""Startup and interaction times of ``minidr explore`` (headless, textual's test driver).

    python benchmarks/bench_tui.py [--n 20000] [--repeat 3]

Builds a synthetic release (benchmarks/synthetic_release.py) in a temporary directory and
measures, best of ``--repeat``:

* import: ``import minidr.tui.app`` in a fresh interpreter (textual, pyarrow, duckdb);
* open: ``open_release`` (catalog files, views, spatial functions);
* startup: from ``ExplorerApp(...)`` to the first screen drawn (tree, editor, footer);
* first query: ctrl+j on the starter query (1000 Objects) until its rows are on screen;
* page: adding one more page of 200 rows to the results table;
* object view: Enter on a row until stats, light curve and detections are shown.

Nothing is asserted; docs/explore.md records the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


async def one_run(repo: Path) -> dict[str, float]:
    from minidr.query import open_release
    from minidr.tui.app import ExplorerApp

    out = {}
    t0 = time.perf_counter()
    dr = open_release(repo)
    out["open"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    app = ExplorerApp(dr, show_timing=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        out["startup"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        await pilot.press("ctrl+j")
        await app.workers.wait_for_complete()
        await pilot.pause()
        out["first query"] = time.perf_counter() - t0
        table = app.results.table
        t0 = time.perf_counter()
        table.load_more()
        await pilot.pause()
        out["page (200 rows)"] = time.perf_counter() - t0
        table.focus()
        t0 = time.perf_counter()
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        out["object view"] = time.perf_counter() - t0
    dr.close()
    return out


def import_time() -> float:
    code = "import time; t=time.perf_counter(); import minidr.tui.app; print(time.perf_counter()-t)"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       cwd=Path(__file__).resolve().parents[1])
    return float(p.stdout.strip())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000, help="Objects in the synthetic release")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)
    from synthetic_release import build_release

    with tempfile.TemporaryDirectory() as tmp:
        build_release(tmp, a.n, name="DR1", partition_rows=5_000, row_group_rows=1_000, sources_per_object=3)
        best: dict[str, float] = {"import": min(import_time() for _ in range(a.repeat))}
        for _ in range(a.repeat):
            for k, v in asyncio.run(one_run(Path(tmp))).items():
                best[k] = min(best.get(k, v), v)
    print(f"minidr explore on a synthetic release of {a.n:,} Objects, {3 * a.n:,} Sources (best of {a.repeat}):")
    for k, v in best.items():
        print(f"  {k:<16} {v * 1000:8.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
