"""Every code block of the docs runs, against the sample release (issue 8: docs that are true).

The rule, for docs/*.md and README.md:

* a ```python block is executed; the blocks of one page share one namespace, in page order;
* a ```console or ```shell block is run line by line: every line that starts with
  ``minidr `` or ``$ minidr `` is a command (``\\`` continues a line, ``# ...`` comments
  are dropped) and must exit 0; in a block with ``$ `` prompts the other lines are output
  and are not run; other lines (``source .venv/bin/activate``, ``make demo``) are skipped;
* every other fence language (```text, ```toml, ```json, ``` with none) is illustration only.

Python and command blocks of a page run in order in one temporary directory where
``minidr-demo/repo`` (and ``repo``) is a copy of the session's sample repository (so that
commands which write there, like ``minidr qa``, cannot change the shared fixture) and
``data_samples`` links to the sample survey. ``minidr explore`` is interactive and is not
run here (tests/unit/test_tui.py drives it).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
RUN_LANGS = {"python", "console", "shell"}
NOT_RUN = {"explore"}  # interactive: a terminal UI

# Pages whose blocks do not run yet, with why; their owners fix the page, then drop it here
# (a page that runs anyway shows as XPASS).
NOT_YET = {
}
# Pages that still have fences without a language (so not clearly illustration or code);
# cli.md is written by docs/generate_cli.py, which would have to write ```text.
BARE_FENCES_ALLOWED: set[str] = set()

FENCE = re.compile(r"^(\s*)(`{3,})\s*([\w+-]*)")


def blocks(text: str):
    """(language, first line number, code) of every fenced block of a markdown page."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, ticks, lang = m.group(1), m.group(2), m.group(3).lower()
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(ticks):
            line = lines[i]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            i += 1
        out.append((lang, start + 1, "\n".join(body) + "\n"))
        i += 1
    return out


def commands(code: str) -> list[list[str]]:
    """The minidr command lines of a console/shell block, as argument lists (without 'minidr')."""
    raw = code.splitlines()
    prompted = any(line.lstrip().startswith("$ ") for line in raw)
    joined, buf = [], ""
    for line in raw:
        s = line.strip()
        if prompted:
            if not (s.startswith("$ ") or buf):
                continue
            if s.startswith("$ "):
                s = s[2:].strip()
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        joined.append(buf + s)
        buf = ""
    cmds = []
    for line in joined:
        if not line.startswith("minidr "):
            continue
        args = shlex.split(line, comments=True)
        cmds.append(args[1:])
    return cmds


def runnable(page: Path):
    return [(lang, line, code) for lang, line, code in blocks(page.read_text()) if lang in RUN_LANGS]


RUNNABLE = [p for p in PAGES if any(lang == "python" or commands(code) for lang, _, code in runnable(p))]


def test_the_rule_finds_blocks():
    """The extractor sees the pages' blocks (a guard against a parser that finds nothing)."""
    assert len(RUNNABLE) >= 5, RUNNABLE
    assert commands("$ minidr sql r \"SELECT 1\"   # one\nout\n$ ls\n") == [["sql", "r", "SELECT 1"]]
    assert commands("source x\nminidr init a \\\n  --partition-rows 5\n") == [["init", "a", "--partition-rows", "5"]]


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_every_fence_names_its_language(page):
    """```text, ```toml... for illustration, ```python/```console for what runs: never a bare fence."""
    if page.name in BARE_FENCES_ALLOWED:
        pytest.skip("page not converted yet")
    bare = [line for lang, line, _ in blocks(page.read_text()) if not lang]
    assert not bare, f"{page.relative_to(ROOT)}: fences without a language at lines {bare}"


@pytest.fixture
def docs_dir(tmp_path, sample_release, sample_survey, monkeypatch):
    repo, _ = sample_release
    demo = tmp_path / "minidr-demo"
    demo.mkdir()
    shutil.copytree(repo, demo / "repo", symlinks=True, ignore=shutil.ignore_patterns(".lock"))
    (tmp_path / "repo").symlink_to(demo / "repo")
    (tmp_path / "data_samples").symlink_to(sample_survey)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return tmp_path


@pytest.mark.parametrize("page", [pytest.param(p, marks=pytest.mark.xfail(reason=NOT_YET[p.name], strict=False))
                                  if p.name in NOT_YET else p for p in RUNNABLE],
                         ids=[p.relative_to(ROOT).as_posix() for p in RUNNABLE])
def test_page_examples_run(page, docs_dir):
    ns: dict = {"__name__": f"docs:{page.name}"}
    env = {**os.environ, "MPLBACKEND": "Agg", "COLUMNS": "200"}
    for lang, line, code in runnable(page):
        where = f"{page.relative_to(ROOT)}:{line}"
        if lang == "python":
            try:
                exec(compile(code, where, "exec"), ns)
            except Exception as exc:  # the failing block, named, with its error
                raise AssertionError(f"{where}: python block failed: {type(exc).__name__}: {exc}") from exc
            continue
        for args in commands(code):
            if args and args[0] in NOT_RUN:
                continue
            res = subprocess.run([sys.executable, "-m", "minidr", *args], cwd=docs_dir, env=env,
                                 capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=1800)
            assert res.returncode == 0, (f"{where}: `minidr {shlex.join(args)}` exited {res.returncode}\n"
                                         f"{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
