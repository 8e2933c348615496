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
import time
from pathlib import Path

import code_trees


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
    code_trees.add_arguments(parser)
    args = parser.parse_args()
    store = Path(args.store).resolve()
    if args.inner:
        print(json.dumps(measure(store)))
        return
    medians = code_trees.compare(__file__, args, ["--store", str(store)], ("seconds", "ms_per_scene"))
    for label, values in medians.items():
        print(f"{label}: {values['seconds']:.2f} s, {values['ms_per_scene']:.1f} ms per scene")


if __name__ == "__main__":
    main()
