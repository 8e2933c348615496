"""Which objects a model misses: its per-class scene PQ pooled over several evaluated stores, beside the size
of each class's objects in those stores' ground truth.

Reads the per-class tables that `panst3r evaluate` logged to MLflow (one configuration: checkpoint label,
post-processing, keyframes) for every given store, pools them per class (PQ and RQ weighted by the scenes
that hold the class), and measures each thing object's median visible area (share of the view's pixels,
over the views that see it) from the stores' panoptic maps. Things are then grouped by that size:

    .venv/bin/python tests/benchmarks/class_breakdown.py --stores runs/e1000/store runs/e2000/store \
        --tracking-uri sqlite:///runs/mlflow.db --checkpoint seed5000_2700 \
        --postprocess standard_v2:mask_threshold=0.0 --json out.json
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

# Median visible area of a class's objects, as a share of the view: the bins the summary pools things in.
AREA_BINS = (0.0, 0.01, 0.03, 0.10, 1.0)


def object_areas(store: Path, split: str = "val") -> dict[int, list[float]]:
    """Store category id -> the median visible area share of each of its objects in the split's scenes."""
    from datasets.store.reader import StoreReader
    from datasets.store.tables import read_table

    reader = StoreReader(store)
    cls_sep = reader.cls_sep()
    scenes = read_table(store, "scenes")
    areas: dict[int, list[float]] = defaultdict(list)
    for scene_id in scenes.loc[scenes["split"].astype(str) == split, "scene_id"].astype(str):
        per_object: dict[int, list[float]] = defaultdict(list)
        for frame in range(reader.num_frames(scene_id)):
            panoptic = reader.read_pixels(scene_id, frame)["panoptic"].astype(np.int64)
            ids, counts = np.unique(panoptic[panoptic > 0], return_counts=True)
            for object_id, count in zip(ids.tolist(), counts.tolist()):
                per_object[object_id].append(count / panoptic.size)
        for object_id, shares in per_object.items():
            areas[object_id % cls_sep].append(float(np.median(shares)))
    return areas


def pooled_per_class(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Per-class rows of several evaluations -> one row per class: scenes, scenes matched, and PQ / SQ / RQ
    averaged with the number of scenes holding the class as weights."""
    rows = pd.concat(tables, ignore_index=True)
    rows = rows[rows["scenes"] > 0]
    weighted = rows[["PQ", "SQ", "RQ"]].mul(rows["scenes"], axis=0)
    weighted[["class_id", "class_name", "isthing", "scenes", "scenes_matched"]] = rows[
        ["class_id", "class_name", "isthing", "scenes", "scenes_matched"]
    ]
    pooled = weighted.groupby(["class_id", "class_name", "isthing"], as_index=False).sum()
    for metric in ("PQ", "SQ", "RQ"):
        pooled[metric] = pooled[metric] / pooled["scenes"]
    return pooled.sort_values("PQ").reset_index(drop=True)


def with_areas(pooled: pd.DataFrame, areas: dict[int, list[float]], class_offset: int) -> pd.DataFrame:
    """Adds each class's object count and median object area; `class_offset` maps the per-class table's
    class id to the store's category id (evaluation classes count void as 0)."""
    table = pooled.copy()
    store_ids = table["class_id"] - class_offset
    table["objects"] = [len(areas.get(int(i), [])) for i in store_ids]
    table["median_area"] = [
        float(np.median(areas[int(i)])) if areas.get(int(i)) else np.nan for i in store_ids
    ]
    return table


def size_summary(table: pd.DataFrame) -> list[dict]:
    """Thing classes grouped by median object area: classes, scene-class pairs, their mean PQ and RQ."""
    things = table[table["isthing"].astype(bool) & table["median_area"].notna()]
    summary = []
    for low, high in zip(AREA_BINS[:-1], AREA_BINS[1:]):
        group = things[(things["median_area"] >= low) & (things["median_area"] < high)]
        scenes = int(group["scenes"].sum())
        summary.append(
            {
                "median_area": f"{low:.0%}-{high:.0%}",
                "classes": len(group),
                "scene_classes": scenes,
                "matched_share": float(group["scenes_matched"].sum() / scenes) if scenes else None,
                "PQ": float((group["PQ"] * group["scenes"]).sum() / scenes) if scenes else None,
                "RQ": float((group["RQ"] * group["scenes"]).sum() / scenes) if scenes else None,
            }
        )
    return summary


def evaluated_tables(args: argparse.Namespace, stores: list[Path]) -> list[pd.DataFrame]:
    """The per-class table of the newest finished run of the configuration on each store."""
    import mlflow

    from flows.compare import read_per_class

    mlflow.set_tracking_uri(args.tracking_uri)
    tables = []
    for store in stores:
        query = (
            f"params.checkpoint_label = '{args.checkpoint}' and params.postprocess = '{args.postprocess}' "
            f"and params.keyframes = '{args.keyframes}' and params.store = '{store}' "
            "and attributes.status = 'FINISHED'"
        )
        runs = mlflow.search_runs(
            experiment_names=[args.experiment], filter_string=query, order_by=["start_time DESC"]
        )
        if runs.empty:
            raise SystemExit(
                f"no finished {args.experiment} run matches {query}; run `panst3r evaluate` first"
            )
        table = read_per_class(runs.iloc[0]["run_id"], args.tracking_uri)
        if table is None:
            raise SystemExit(f"run {runs.iloc[0]['run_id']} has no per-class table")
        tables.append(table)
    return tables


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stores", nargs="+", required=True, help="evaluated stores (their val scenes)")
    parser.add_argument("--tracking-uri", required=True, help="the MLflow store `panst3r evaluate` logged to")
    parser.add_argument("--experiment", default="panst3r-eval")
    parser.add_argument("--checkpoint", required=True, help="the checkpoint label of the runs")
    parser.add_argument("--postprocess", required=True)
    parser.add_argument("--keyframes", default="all")
    parser.add_argument("--json", help="write the table and the size summary here")
    args = parser.parse_args()
    stores = [Path(store).resolve() for store in args.stores]
    pooled = pooled_per_class(evaluated_tables(args, stores))
    areas: dict[int, list[float]] = defaultdict(list)
    for store in stores:
        for category, values in object_areas(store).items():
            areas[category].extend(values)
    # The per-class tables name classes by the store's category ids (void is -1).
    table = with_areas(pooled, areas, class_offset=0)
    summary = size_summary(table)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for row in summary:
        print(json.dumps(row))
    if args.json:
        payload = {
            "configuration": {k: getattr(args, k) for k in ("checkpoint", "postprocess", "keyframes")},
            "stores": [store.parent.name for store in stores],
            "by_size": summary,
            "per_class": json.loads(table.to_json(orient="records")),
        }
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()
