"""Tests load a benchmark script (`tests/benchmarks/NAME.py`, not a package) as a module through here.

Any test can `import benchmark_scripts` (tests/ is on sys.path, as for `shared_fixtures`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parent / "benchmarks"


def load_benchmark(name: str, module_name: str | None = None) -> ModuleType:
    """`tests/benchmarks/{name}.py` imported as `module_name` (default `{name}_benchmark`), registered in
    sys.modules first: dataclasses look their module up there."""
    module_name = module_name or f"{name}_benchmark"
    spec = importlib.util.spec_from_file_location(module_name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
