"""A model's pointmap error and focal estimates at several input resolutions: whether its backbone holds its
geometry away from the resolution it was trained at (before a stage 2 at that resolution is worth its cost).

Each `--eval STORE=W,H` scores the store's held-out (`val`) views at W x H with the library's pointmap
evaluation (`datasets.evaluation.pointmap_run`), a store preprocessed at that long side:

    .venv/bin/python tests/benchmarks/pointmap_resolutions.py --model shipped:compact_smooth_v2_synthetic \
        --eval runs/e5000/store=256,192 runs/e5000_320/store=320,240 --json out.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def parse_eval(text: str) -> tuple[Path, tuple[int, int]]:
    """'STORE=W,H' -> (store, (W, H))."""
    store, _, size = text.rpartition("=")
    width, height = (int(value) for value in size.split(","))
    return Path(store), (width, height)


def held_out_scenes(store: Path) -> list[str]:
    """The store's `val` scenes, sorted."""
    from datasets.store.tables import read_table

    scenes = read_table(store, "scenes")
    return sorted(scenes.loc[scenes["split"].astype(str) == "val", "scene_id"].astype(str))


def measure(model, store: Path, resolution: tuple[int, int], device: str) -> dict:
    """Pointmap error and focal estimates of the store's held-out views at `resolution` (W, H)."""
    import torch

    from datasets.evaluation.pointmap_run import PointmapEvalSettings, evaluate_pointmaps
    from datasets.store.reader import StoreReader

    settings = PointmapEvalSettings(
        resolution=resolution, max_views=None, amp=torch.bfloat16 if device.startswith("cuda") else None
    )
    result = evaluate_pointmaps(model, StoreReader(store), held_out_scenes(store), settings)
    return {"resolution": list(resolution), **{k: v for k, v in result.items() if k != "per_scene"}}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="weights: a folder, a checkpoint or shipped:NAME")
    parser.add_argument("--eval", nargs="+", required=True, type=parse_eval, help="STORE=W,H")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    from panst3r_core.checkpoint.loading import load_any_checkpoint
    from panst3r_core.pretrained import resolve_weights

    model = load_any_checkpoint(resolve_weights(args.model)).model.eval().to(args.device)
    rows = []
    for store, resolution in args.eval:
        rows.append({"store": store.parent.name, **measure(model, store.resolve(), resolution, args.device)})
        print(json.dumps(rows[-1]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
