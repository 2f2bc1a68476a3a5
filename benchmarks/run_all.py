"""``make bench``: run every benchmark in one go and write docs/benchmarks.md.

Each benchmark prints its own table (ratios against the best existing tool run in the same
process on the same data); this script records them with the machine and date. Sizes are
chosen to finish in reasonable time on a 2-core machine; pass ``--full`` for the sizes the
issues name (50 million Objects for the SQL benchmark).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# (script, quick args, full args)
BENCHMARKS = [
    ("bench_simulate.py", ["--repeat", "2"], []),
    ("bench_isr.py", ["--repeat", "3"], []),
    ("bench_image.py", [], []),
    ("bench_detect.py", [], []),
    ("bench_associate.py", ["--sizes", "1000000"], []),
    ("bench_release.py", ["--rows", "2000000"], []),
    ("bench_query.py", ["--n", "5000000"], ["--n", "50000000"]),
    ("bench_import.py", [], []),
    ("bench_pipeline.py", [], []),
    ("bench_tui.py", [], []),
]


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = float("nan")
    import numba
    import numpy

    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM; Python {platform.python_version()}, "
            f"numpy {numpy.__version__}, numba {numba.__version__}; load average before the run "
            f"{os.getloadavg()[0]:.1f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--full", action="store_true", help="the sizes the issues name (slow)")
    ap.add_argument("--only", default=None, help="comma-separated benchmark names to run")
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    a = ap.parse_args(argv)
    only = set(a.only.split(",")) if a.only else None
    sections = []
    for script, quick, full in BENCHMARKS:
        name = script[:-3]
        if only and name not in only and script not in only:
            continue
        path = HERE / script
        if not path.exists():
            sections.append(f"## {name}\n\nnot available in this build.\n")
            continue
        args = full if a.full else quick
        print(f"running {script} {' '.join(args)}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True, cwd=ROOT)
        took = time.perf_counter() - t0
        out = res.stdout.strip() or "(no output)"
        status = "" if res.returncode == 0 else f"\n\nexit code {res.returncode}:\n```text\n{res.stderr.strip()[-2000:]}\n```"
        sections.append(f"## {name}\n\n`python benchmarks/{script} {' '.join(args)}` ({took:.0f} s)\n\n"
                        f"```text\n{out}\n```{status}\n")
    stamp = (f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC\n"
             f"- machine: {machine()}\n")
    # with --only, the other benchmarks' earlier sections (with their own date) are kept
    kept = _previous_sections(Path(a.out)) if only else {}
    for sec in sections:
        kept[sec.split("\n", 1)[0]] = sec.replace("\n\n", f"\n\n{stamp}\n", 1)
    order = [f"## {script[:-3]}" for script, _, _ in BENCHMARKS]
    text = "\n".join([
        "# Benchmarks",
        "",
        "Produced by `make bench` (`benchmarks/run_all.py`; `--only NAME` reruns one); do not edit by hand.",
        "Every section records the date and machine of its run.",
        "",
        *[kept[h] for h in order if h in kept],
    ])
    Path(a.out).write_text(text)
    print(f"wrote {a.out}", file=sys.stderr)
    return 0


def _previous_sections(path: Path) -> dict:
    if not path.exists():
        return {}
    parts = path.read_text().split("\n## ")[1:]
    return {f"## {p.split(chr(10), 1)[0]}": f"## {p.rstrip()}\n" for p in parts}


if __name__ == "__main__":
    sys.exit(main())
