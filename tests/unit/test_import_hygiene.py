"""The layering the architecture promises (docs/architecture.md), checked on the source."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "minidr"
STAGES = ["raw", "calib", "isr", "image", "calibrate", "associate", "sky"]
LATER = ["repo", "release", "query", "pipeline", "cli", "tui", "qa", "repository"]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:  # relative: resolve against the file's package
                base = path.relative_to(PKG.parent).with_suffix("").parts[: -node.level]
                mod = ".".join([*base, mod]) if mod else ".".join(base)
            names.add(mod)
    return names


def test_kernels_import_only_numpy_numba_math_and_jit():
    """Kernel modules are pure: numpy, numba, math, the jit decorators and other kernel modules."""
    allowed = ("numpy", "numba", "math", "minidr._jit", "__future__")
    for path in PKG.rglob("*kernels.py"):
        bad = [m for m in _imports(path) if not m.startswith(allowed) and not m.endswith("kernels")]
        assert not bad, f"{path.relative_to(PKG)} imports {bad}"


def test_stages_never_import_later_layers():
    for stage in STAGES:
        for path in (PKG / stage).rglob("*.py"):
            for m in _imports(path):
                for later in LATER:
                    assert not m.startswith(f"minidr.{later}"), f"{path.relative_to(PKG)} imports {m}"


def test_only_cli_imports_click_and_only_tui_imports_textual():
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).parts
        mods = _imports(path)
        if rel[0] != "cli":
            assert not any(m == "click" or m.startswith("click.") for m in mods), path
        if rel[0] != "tui":
            assert not any(m.startswith("textual") for m in mods), path


def test_import_minidr_loads_no_front_end():
    code = "import sys, minidr; print(sorted(m for m in ('textual', 'click', 'duckdb') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
