"""A cold build of a store's tables (`datasets.store.tables.TableBuilder`, what a preprocessing run writes at
its end and what `panst3r status` reads): seconds in all and per committed scene, the store's own scenes read
by a builder that has cached none of them.

Runs alternate over `--code` trees (each measured by its own library):

    .venv/bin/python tests/benchmarks/store_tables.py --store runs/synthetic_accuracy/store \
        --code before=../main after=. --runs 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from code_trees import parse_code, run_in_tree


def measure(store: Path) -> dict:
    """One cold build of the three tables (the library of the tree on sys.path)."""
    from datasets.store.tables import TableBuilder

    started = time.perf_counter()
    tables = TableBuilder(store).build()
    seconds = time.perf_counter() - started
    scenes = len(tables["scenes"])
    return {
        "scenes": scenes,
        "frames": len(tables["frames"]),
        "pairs": len(tables["pairs"]),
        "seconds": seconds,
        "ms_per_scene": 1000 * seconds / max(scenes, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", required=True, help="a preprocessed store")
    parser.add_argument(
        "--code", nargs="+", default=["this=."], metavar="LABEL=FOLDER", help="trees to compare"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per tree (default 3)")
    parser.add_argument("--json", default=None, help="write the rows and medians to this file")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    store = Path(args.store).resolve()
    if args.inner:
        print(json.dumps(measure(store)))
        return
    trees, rows = parse_code(args.code), []
    for run in range(args.runs):
        for label, tree in trees.items():
            rows.append({"code": label, "run": run, **run_in_tree(__file__, tree, ["--store", str(store)])})
            print(json.dumps(rows[-1]), flush=True)
    medians = {
        label: {
            key: statistics.median(r[key] for r in rows if r["code"] == label)
            for key in ("seconds", "ms_per_scene")
        }
        for label in trees
    }
    for label, values in medians.items():
        print(f"{label}: {values['seconds']:.2f} s, {values['ms_per_scene']:.1f} ms per scene")
    if args.json:
        settings = {"runs": args.runs, "cpus": os.cpu_count(), "python": platform.python_version()}
        Path(args.json).write_text(
            json.dumps({"settings": settings, "medians": medians, "rows": rows}, indent=1)
        )


if __name__ == "__main__":
    main()
