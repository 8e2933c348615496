"""`panst3r pq`: panoptic quality of predictions in the COCO panoptic format (JSON + PNG)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "panoptic quality of predictions in the COCO panoptic format"

SCENE_RULE = (
    "scene mode groups images into scenes by the annotation's `scene_id` key if present, else the folder "
    "part of `file_name` (scene0/frame_001.png -> scene0), else the file stem up to its last underscore "
    "(scene0_001.png -> scene0); all views of a scene are scored together (Panoptic Lifting protocol: "
    "views resized to 512x512, GT void deleted, robust class filter), then averaged over scenes"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = SCENE_RULE
    parser.add_argument("--gt-json", required=True, type=Path, help="ground-truth COCO panoptic JSON")
    parser.add_argument("--pred-json", required=True, type=Path, help="prediction COCO panoptic JSON")
    parser.add_argument(
        "--gt-folder", type=Path, default=None, help="GT PNG folder (default: GT JSON path without .json)"
    )
    parser.add_argument(
        "--pred-folder",
        type=Path,
        default=None,
        help="prediction PNG folder (default: prediction JSON path without .json)",
    )
    parser.add_argument(
        "--mode",
        choices=("coco", "scene"),
        default="coco",
        help="coco: panopticapi pq_compute semantics per image, summed over the set; scene: see below",
    )
    parser.add_argument(
        "--json-out", type=Path, default=None, help="write the result (pq_compute's structure) here"
    )
    parser.add_argument(
        "--scene-size",
        type=int,
        nargs=2,
        metavar=("W", "H"),
        default=(512, 512),
        help="scene mode: size every view is resized to with nearest neighbour (default 512 512)",
    )
    parser.add_argument(
        "--robust",
        type=float,
        default=0.005,
        help="scene mode: drop classes under this pixel share (default 0.005)",
    )
    parser.add_argument("--per-class", action="store_true", help="also print the per-class table")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from datasets.coco_panoptic import evaluate_coco_panoptic, read_coco_panoptic
    from panst3r_core.metrics.scene_pq import ScenePQOptions

    options = ScenePQOptions(resize_to=tuple(args.scene_size), robust_threshold=args.robust)
    result = evaluate_coco_panoptic(
        args.gt_json, args.pred_json, args.gt_folder, args.pred_folder, mode=args.mode, scene_options=options
    )
    console = Console()
    table = Table(title=f"Panoptic quality ({args.mode} mode)")
    for column in ("", "PQ", "SQ", "RQ", "N"):
        table.add_column(column, justify="right" if column else "left")
    for name, group in (("All", result.all), ("Things", result.things), ("Stuff", result.stuff)):
        table.add_row(name, _percent(group.pq), _percent(group.sq), _percent(group.rq), str(group.n))
    console.print(table)
    if args.per_class:
        names = read_coco_panoptic(args.gt_json, args.gt_folder, is_gt=True).category_names
        per_class = Table(title="Per class")
        for column in ("id", "name", "PQ", "SQ", "RQ"):
            per_class.add_column(column)
        for category, score in result.per_class.items():
            per_class.add_row(
                str(category),
                names.get(category, ""),
                _percent(score.pq),
                _percent(score.sq),
                _percent(score.rq),
            )
        console.print(per_class)
    if args.json_out is not None:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(result.to_dict(), indent=2))
        console.print(f"result written to {args.json_out}")
    return 0
