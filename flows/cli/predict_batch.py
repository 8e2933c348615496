"""`panst3r predict-batch`: the Prefect flow `predict-batch`, every scene of a store or of image folders
predicted on a Dask cluster (one GPU per worker), one folder per scene under --out; incremental."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from flows.cli._common import (
    STORE_HELP_SUFFIX,
    add_prefect_port_argument,
    add_s3_endpoint_argument,
    prepare_prefect,
)
from flows.cli.cluster_args import add_cluster_arguments, cluster_from_args
from flows.cli.prediction_options import (
    add_prediction_settings_arguments,
    add_vocabulary_arguments,
    check_prediction_arguments,
    class_vocabulary,
    export_class_sets,
    parse_postprocess_options,
)

HELP = "Prefect flow `predict-batch`: predict every scene of a store or of image folders (incremental)"
DEVICES = ("auto", "cuda", "cpu")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights",
        required=True,
        help="checkpoint: an official PanSt3R .pth file or a folder in our format (model.safetensors + config.json)",
    )
    parser.add_argument(
        "--out",
        required=True,
        help="output folder: OUT/<scene>/ per scene (the files of `panst3r predict` + manifest.json)",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--store", default=None, help="predict the scenes of this store" + STORE_HELP_SUFFIX)
    source.add_argument(
        "--folders",
        nargs="+",
        default=None,
        metavar="DIR",
        help="predict these image folders, one scene each, named after the folder (images sorted by name)",
    )
    parser.add_argument(
        "--split", default="all", help="with --store: the split whose scenes to predict (default all)"
    )
    parser.add_argument(
        "--scenes", nargs="+", default=None, metavar="ID", help="with --store: only these scenes"
    )
    parser.add_argument(
        "--force", action="store_true", help="predict every scene again, even those already up to date"
    )
    add_s3_endpoint_argument(parser)
    add_vocabulary_arguments(parser)
    add_prediction_settings_arguments(parser)
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="auto: each worker's own GPU when there are GPUs, else the CPU (default); cuda; cpu",
    )
    parser.add_argument("--summary-json", default=None, help="also write the run summary to this JSON file")
    add_cluster_arguments(
        parser,
        workers_default=None,
        workers_help="Dask workers of the local cluster (default: one per visible GPU, pinned to it; 2 on the CPU)",
    )
    add_prefect_port_argument(parser)


def run(args: argparse.Namespace) -> int:
    from flows.prefect_env import prefect_api

    settings = _settings(args)
    _check_sources(args)
    cluster = None if _local_cluster(args) else cluster_from_args(args)
    prepare_prefect()
    with prefect_api(port=args.prefect_port):
        from flows.predict_batch import run_predict_batch  # imports prefect: after the env is set

        summary = run_predict_batch(
            out=args.out,
            weights=args.weights,
            settings=settings,
            store=args.store,
            split=args.split,
            scenes=args.scenes,
            folders=args.folders,
            device=args.device,
            force=args.force,
            cluster=cluster,
            workers=args.workers,
        )
    print_summary(summary)
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary, indent=1))
    return 1 if summary["failed"] else 0


def _settings(args: argparse.Namespace):
    """The checked PredictionSettings of the flags (before any cluster or model starts)."""
    from datasets.batch_prediction.settings import PredictionSettings
    from panst3r_core.inference.streaming import check_chunk_views
    from panst3r_core.predictor import check_postprocess

    check_prediction_arguments(args)
    check_chunk_views(args.chunk_views)  # here, not once per scene on the workers
    class_names, _ = class_vocabulary(args)  # also checks --class-embeddings against the names
    options = parse_postprocess_options(args.postprocess_option)
    if args.postprocess is not None:
        check_postprocess(args.postprocess, options)
    return PredictionSettings(
        postprocess=args.postprocess,
        postprocess_options=options,
        num_keyframes=args.num_keyframes,
        keyframe_mode=args.keyframe_mode,
        image_size=args.image_size,
        amp=args.amp,
        encoder_autocast=args.encoder_autocast,
        encoder_attention=args.encoder_attention,
        compile=args.compile,
        attention=args.attention,
        tf32=args.tf32,
        class_names=None if class_names is None else tuple(class_names),
        class_embeddings=None
        if args.class_embeddings is None
        else str(Path(args.class_embeddings).resolve()),
        text_embeddings=args.text_embeddings,
        siglip=args.siglip,
        dino_config=None if args.dino_config is None else str(Path(args.dino_config).resolve()),
        chunk_views=args.chunk_views,
        class_sets=export_class_sets(args),
        raw=args.raw,
        min_confidence=args.min_confidence,
        max_points=args.max_points,
    )


def _check_sources(args: argparse.Namespace) -> None:
    from flows.cli._common import require_store

    if args.store is not None:
        require_store(args.store)
    elif args.scenes:
        raise ValueError(
            "--scenes selects scenes of a --store; with --folders, list only the folders you want"
        )
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder; choose another --out")


def _local_cluster(args: argparse.Namespace) -> bool:
    return args.cluster in (None, "local") and not args.dask_address


def print_summary(summary: dict) -> None:
    """One row per scene (done / skipped / failed with its reason), then the totals and the throughput."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"predict-batch summary ({summary['seconds']:.1f} s, output {summary['out']})")
    for column in ("scene", "result", "views", "seconds", "reason"):
        table.add_column(column, justify="right" if column in ("views", "seconds") else "left")
    for scene_id, result in summary["done"].items():
        table.add_row(scene_id, "[green]done", str(result["views"]), f"{result['seconds']:.1f}", "")
    for scene_id in summary["skipped"]:
        table.add_row(scene_id, "skipped", "", "", "up to date (same checkpoint, settings and input)")
    for scene_id, reason in summary["failed"].items():
        table.add_row(scene_id, "[red]failed", "", "", reason)
    console = Console() if sys.stdout.isatty() else Console(width=160)
    console.print(table)
    per_gpu = f", {summary['scenes_per_gpu_hour']:.1f} scenes per GPU-hour" if summary["gpus"] else ""
    console.print(
        f"done {len(summary['done'])} / skipped {len(summary['skipped'])} / failed {len(summary['failed'])}; "
        f"{summary['scenes_per_hour']:.1f} scenes/hour{per_gpu} on {summary.get('workers', 'the workers')}"
    )
