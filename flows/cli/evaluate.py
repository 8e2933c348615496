"""`panst3r evaluate`: run the Prefect flow `evaluate` (a sweep logged to MLflow as parent/child runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from flows.cli._common import (
    STORE_HELP_SUFFIX,
    add_prefect_port_argument,
    add_s3_endpoint_argument,
    prepare_prefect,
    require_store,
)

HELP = "Prefect flow `evaluate`: sweep checkpoints x post-processings x keyframes"


def _keyframes(text: str) -> int | None:
    if text.lower() in ("all", "none"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a keyframe count (an integer >= 1 or 'all')"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"keyframe count {value} must be >= 1 (or 'all')")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", required=True, help="store made by `panst3r preprocess`" + STORE_HELP_SUFFIX
    )
    add_s3_endpoint_argument(parser)
    parser.add_argument(
        "--checkpoints",
        required=True,
        nargs="+",
        metavar="CKPT",
        help="model folders (e.g. runs/train/<run>/model-final) or official .pth files",
    )
    parser.add_argument(
        "--postprocess",
        nargs="+",
        default=["standard_v2"],
        help="post-processings to sweep: standard_v1, standard_v2, qubo, each optionally with option "
        "overrides, e.g. standard_v2:mask_threshold=0.0,cls_threshold=0.3 (default standard_v2)",
    )
    parser.add_argument(
        "--keyframes",
        nargs="+",
        type=_keyframes,
        default=[None],
        help="keyframe counts to sweep; 'all' = every view (default all)",
    )
    parser.add_argument(
        "--split", default="val", help="scenes of this split of the store ('all' = every scene; default val)"
    )
    parser.add_argument(
        "--max-views", type=int, default=None, help="evaluate at most this many views per scene (default all)"
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="long side of the network input (default: the training resolution of a model folder, else 512)",
    )
    parser.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:N or auto (the GPU when present; default)"
    )
    parser.add_argument(
        "--query-vocabulary",
        choices=("store", "checkpoint"),
        default="store",
        help="query the model with the store's class names (default) or the checkpoint's training names",
    )
    parser.add_argument(
        "--visual-scenes",
        type=int,
        default=2,
        help="scenes per configuration with a predicted-vs-GT picture artifact (default 2)",
    )
    parser.add_argument(
        "--experiment", default="panst3r-eval", help="MLflow experiment (default panst3r-eval)"
    )
    parser.add_argument("--sweep-name", default=None, help="name of the parent run (default sweep-<time>)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="return an earlier finished sweep of the same store content, checkpoints and settings",
    )
    parser.add_argument("--runs-dir", default="runs", help="state folder (default ./runs)")
    parser.add_argument(
        "--tracking-uri", default=None, help="MLflow tracking URI (default sqlite RUNS/mlflow.db)"
    )
    add_prefect_port_argument(parser)


def run(args: argparse.Namespace) -> int:
    from flows.prefect_env import prefect_api

    require_store(args.store)
    for checkpoint in args.checkpoints:
        if not Path(checkpoint).exists():
            raise FileNotFoundError(
                f"--checkpoints {checkpoint} does not exist; pass a model folder or an official .pth file"
            )
    if args.max_views is not None and args.max_views < 1:
        raise ValueError(f"--max-views must be >= 1, got {args.max_views}")
    prepare_prefect()
    with prefect_api(port=args.prefect_port):
        from flows.evaluate import evaluate  # imports prefect: after the env is set

        summary = evaluate(
            store=args.store,
            checkpoints=list(args.checkpoints),
            postprocess=list(args.postprocess),
            keyframes=list(args.keyframes),
            split=args.split,
            max_views=args.max_views,
            device=args.device,
            experiment=args.experiment,
            runs_dir=args.runs_dir,
            tracking_uri=args.tracking_uri,
            image_size=args.image_size,
            query_vocabulary=args.query_vocabulary,
            visual_scenes=args.visual_scenes,
            sweep_name=args.sweep_name,
            reuse=args.reuse,
        )
    print_summary(summary)
    return 0


def print_summary(summary: dict) -> None:
    import sys

    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"evaluate: {len(summary['scenes'])} {summary['split']} scene(s), "
        f"sweep {summary['parent_run_id']} in experiment {summary['experiment']}"
        + (" (reused)" if summary.get("reused") else "")
    )
    for column in ("checkpoint", "postprocess", "keyframes", "PQ", "PQ_th", "PQ_st", "coco_PQ", "s/scene"):
        table.add_column(column, justify="right" if column[0].isupper() or column == "s/scene" else "left")
    for run in sorted(summary["runs"], key=lambda r: -r.get("PQ", -1.0)):
        table.add_row(
            run["checkpoint"],
            run["postprocess"],
            run["keyframes"],
            *(f"{run[k]:.3f}" if k in run else "-" for k in ("PQ", "PQ_th", "PQ_st", "coco_PQ")),
            f"{run['seconds_per_scene']:.2f}",
        )
    console = Console() if sys.stdout.isatty() else Console(width=150)
    console.print(table)
    console.print(
        f"MLflow: {summary['tracking_uri']} (compare with `panst3r compare --experiment {summary['experiment']}`)"
    )
