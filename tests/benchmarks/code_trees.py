"""Comparing code versions in one benchmark: `--code LABEL=FOLDER ...` names source trees, and each
measurement runs in a child process with that tree first on PYTHONPATH, so every version is measured by its
own library under the same machine state (runs alternate between trees)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def parse_code(items: list[str]) -> dict[str, Path]:
    """{label: tree} of `--code` items written LABEL=FOLDER."""
    trees = {}
    for item in items:
        label, _, folder = item.partition("=")
        if not folder:
            raise SystemExit(f"--code {item!r}: give LABEL=FOLDER")
        trees[label] = Path(folder).resolve()
    return trees


def run_in_tree(script: str, tree: Path, arguments: list[str], timeout_s: float = 1800) -> dict:
    """The JSON object that `script --inner ARGUMENTS` prints last, run with `tree`'s library."""
    command = [sys.executable, str(Path(script).resolve()), "--inner", *arguments]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        command, cwd=tree, env=env, capture_output=True, text=True, check=True, timeout=timeout_s
    )
    return json.loads(done.stdout.strip().splitlines()[-1])
