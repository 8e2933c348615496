"""Planning of a first preprocess run: seconds until the first scene's plan is decided (its tasks can go to
the workers) and until every plan is, with an empty digest cache (a fresh store: every input file is read
and hashed), through `datasets.preprocess.scene_job.ScenePlanner`, which the flow uses.

Runs alternate over `--code` trees (each measured by its own library: this script re-runs itself with the
tree on PYTHONPATH), so that two versions compare on the same machine state.

    .venv/bin/panst3r synth --preset scannetpp --scenes 8 --seed 3 --out runs/realistic
    .venv/bin/python tests/benchmarks/preprocess_planning.py --root runs/realistic --pairs runs/realistic/pairs \
        --code before=../main after=. --runs 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import code_trees


def measure(root: Path, pairs: Path | None) -> dict:
    """One planning of every scene of `root` into a fresh store (the library of the tree on sys.path)."""
    from datasets.preprocess.result import PreprocessConfig
    from datasets.preprocess.scene_job import ScenePlanner
    from datasets.scannetpp.reader import list_scenes
    from datasets.store.writer import open_or_create_store

    scenes = list_scenes(root, pairs)
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "store"
        open_or_create_store(store)
        started = time.perf_counter()
        planner = ScenePlanner(store, root, pairs, PreprocessConfig())
        plans = planner.plans(scenes)
        first = next(plans)
        first_seconds = time.perf_counter() - started
        rest = list(plans)
        all_seconds = time.perf_counter() - started
        files_read = planner.finish([first, *rest]).files_read
    return {
        "scenes": len(scenes),
        "first_plan": first_seconds,
        "all_plans": all_seconds,
        "files_read": files_read,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", required=True, help="ScanNet++ v2 root (e.g. of `panst3r synth`)")
    parser.add_argument("--pairs", default=None, help="its pairs folder (optional)")
    code_trees.add_arguments(parser)
    args = parser.parse_args()
    root, pairs = Path(args.root).resolve(), Path(args.pairs).resolve() if args.pairs else None
    if args.inner:
        print(json.dumps(measure(root, pairs)))
        return
    arguments = ["--root", str(root), *(["--pairs", str(pairs)] if pairs else [])]
    medians = code_trees.compare(__file__, args, arguments, ("first_plan", "all_plans"))
    for label, values in medians.items():
        print(f"{label}: first plan {values['first_plan']:.2f} s, all plans {values['all_plans']:.2f} s")


if __name__ == "__main__":
    main()
