"""Comparing code versions in one benchmark: `--code LABEL=FOLDER ...` names source trees, and each
measurement runs in a child process with that tree first on PYTHONPATH, so every version is measured by its
own library under the same machine state (runs alternate between trees)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--code, --runs, --json and the hidden --inner of a tree-comparing benchmark."""
    parser.add_argument(
        "--code", nargs="+", default=["this=."], metavar="LABEL=FOLDER", help="trees to compare"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per tree (default 3)")
    parser.add_argument("--json", default=None, help="write the rows and medians to this file")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)


def compare(script: str, args: argparse.Namespace, arguments: list[str], keys: tuple[str, ...]) -> dict:
    """`args.runs` rounds over the `--code` trees (each row printed as it comes); {label: {key: median}},
    written with the rows to `--json` when given."""
    trees, rows = parse_code(args.code), []
    for run in range(args.runs):
        for label, tree in trees.items():
            rows.append({"code": label, "run": run, **run_in_tree(script, tree, arguments)})
            print(json.dumps(rows[-1]), flush=True)
    medians = {
        label: {key: statistics.median(r[key] for r in rows if r["code"] == label) for key in keys}
        for label in trees
    }
    if args.json:
        settings = {"runs": args.runs, "cpus": os.cpu_count(), "python": platform.python_version()}
        Path(args.json).write_text(
            json.dumps({"settings": settings, "medians": medians, "rows": rows}, indent=1)
        )
    return medians
