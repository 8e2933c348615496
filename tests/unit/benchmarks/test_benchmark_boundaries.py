"""The benchmark scripts drive the library through its public names only, and the GPU benchmark's library
path needs neither Prefect nor MLflow (its machine has neither)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
PROJECT_PACKAGES = ("panst3r_core", "datasets", "flows")
SCRIPTS = sorted(BENCHMARKS.glob("*.py"))


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _project_imports(tree: ast.AST) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every import of a project module, at any depth of the script."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PROJECT_PACKAGES:
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.split(".")[0] in PROJECT_PACKAGES]
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_a_benchmark_reaches_no_private_member(script):
    tree = ast.parse(script.read_text())
    private = [
        f"{module}: {name}"
        for module, imported in _project_imports(tree)
        for name in [*module.split("."), *imported]
        if _is_private(name)
    ]
    private += [
        f"line {node.lineno}: .{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and _is_private(node.attr)
        and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
    ]
    assert not private, f"{script.name} uses private members: {private}"


def test_the_synthetic_benchmark_library_path_imports_neither_prefect_nor_mlflow():
    script = BENCHMARKS / "synthetic_accuracy.py"
    modules = sorted({module for module, _ in _project_imports(ast.parse(script.read_text()))})
    # the torchrun worker is what the launcher starts; its MLflow import waits for a handed-over run
    modules.append("flows.torchrun_worker")
    program = (
        "import importlib, importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('synthetic_accuracy', {str(script)!r})\n"
        "module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'prefect', 'prefect_dask', 'mlflow'})))\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "datasets.evaluation.sweep" in modules and "flows.run_folder" in modules
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
