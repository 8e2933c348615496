"""`panst3r predict`: images in, panoptic 3-D reconstruction out (PNG ids, visualisations, JSON, PLY, GLB)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

HELP = "images in, panoptic 3-D reconstruction out"
LOG = logging.getLogger(__name__)

# above this many views, the whole-scene path holds every view's outputs at once: suggest streaming
MANY_VIEWS = 500


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights",
        required=True,
        help="checkpoint: an official PanSt3R .pth file or a folder in our format (model.safetensors + config.json)",
    )
    inputs = parser.add_mutually_exclusive_group(required=True)
    inputs.add_argument(
        "--images",
        nargs="+",
        metavar="DIR_OR_FILE",
        help="a folder of images (natural name order: frame_2 before frame_10) and/or image files, in view order",
    )
    inputs.add_argument(
        "--video",
        metavar="FILE",
        default=None,
        help="a video file whose frames, sampled at --fps, are the views",
    )
    parser.add_argument(
        "--fps",
        type=float,
        default=1.0,
        metavar="R",
        help="with --video: frames sampled per second of video (default 1; at least the video's rate = every frame)",
    )
    parser.add_argument(
        "--out",
        required=True,
        help="output folder (created; existing files are overwritten; with --stream-out it must be new, empty "
        "or an earlier streamed output, which is replaced whole)",
    )
    _add_vocabulary_arguments(parser)
    parser.add_argument(
        "--num-keyframes",
        type=int,
        default=None,
        metavar="K",
        help="keyframes that build the memory and decode the queries (default: all views, at most 50)",
    )
    parser.add_argument(
        "--chunk-views",
        type=int,
        default=None,
        metavar="N",
        help="stream the views in chunks of this many (device memory bounded by keyframes + chunk; same results); "
        "images are then read and resized chunk by chunk",
    )
    parser.add_argument(
        "--stream-out",
        action="store_true",
        help="with --chunk-views: write each chunk to OUT/prediction.zarr and OUT/panoptic/ as it comes, so "
        "host memory stays bounded for thousands of views (no scene.ply / scene.glb / raw.npz); OUT appears "
        "only when complete",
    )
    parser.add_argument(
        "--keyframe-mode",
        choices=["linspace", "retrieval"],
        default="linspace",
        help="evenly spaced keyframes (default) or diverse ones chosen from encoder features",
    )
    parser.add_argument(
        "--postprocess",
        default=None,
        help="standard_v2 (default unless the checkpoint says otherwise), standard_v1 or qubo",
    )
    parser.add_argument(
        "--postprocess-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one post-processing option, e.g. cls_threshold=0.2 (repeatable)",
    )
    parser.add_argument(
        "--image-size", type=int, default=512, help="long side of the network input (default 512)"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument(
        "--amp",
        choices=["none", "bf16", "fp16"],
        default="none",
        help="mixed precision on CUDA (default none)",
    )
    parser.add_argument("--raw", action="store_true", help="also write raw.npz with every raw model output")
    parser.add_argument(
        "--min-confidence",
        type=float,
        default=3.0,
        help="points below this confidence are left out of scene.ply / scene.glb (default 3.0, as the demo)",
    )
    parser.add_argument(
        "--max-points",
        type=int,
        default=2_000_000,
        help="evenly thin the exported point cloud to at most this many points (default 2000000)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. in logs)")


def _add_vocabulary_arguments(parser: argparse.ArgumentParser) -> None:
    """The class vocabulary and how its names become embeddings."""
    vocab = parser.add_mutually_exclusive_group()
    vocab.add_argument(
        "--classes",
        nargs="+",
        metavar="SET",
        default=None,
        help="built-in class sets to union, in order, repeated names dropped: scannetpp coco ade20k "
        "(default: the checkpoint's own class names if it has them, else scannetpp)",
    )
    vocab.add_argument("--class-names", nargs="+", metavar="NAME", default=None, help="explicit class names")
    parser.add_argument(
        "--class-embeddings",
        default=None,
        metavar="E.npy",
        help="precomputed (C, 768) class embeddings; needs --class-names with C names; overrides text embeddings",
    )
    parser.add_argument(
        "--text-embeddings",
        choices=["auto", "siglip", "hashed"],
        default="auto",
        help="how class names become embeddings: siglip (local folder or HF cache), hashed (offline, for "
        "models trained with it), auto (the checkpoint's choice, else siglip, else hashed with a warning)",
    )
    parser.add_argument(
        "--siglip", default=None, metavar="DIR_OR_ID", help="SigLIP model folder or hub id (offline cache)"
    )
    parser.add_argument(
        "--dino-config",
        default=None,
        metavar="J",
        help="DINOv2 config JSON (transformers Dinov2Config fields) for checkpoints whose sizes cannot be inferred",
    )


def run(args: argparse.Namespace) -> int:
    from panst3r_core.predictor import Predictor

    _check_arguments(args)
    class_names, class_embeddings = _vocabulary(args)
    postprocess_options = _parse_options(args.postprocess_option)
    if args.postprocess is not None:  # check before loading anything
        from panst3r_core.predictor import check_postprocess

        check_postprocess(args.postprocess, postprocess_options)
    started = time.perf_counter()

    with _StageProgress(enabled=not args.no_progress) as progress:
        progress("read inputs", 0, 1)
        source = _open_inputs(args)
        progress("load model", 0, 1)
        predictor = Predictor(
            weights=args.weights,
            device=args.device,
            amp=args.amp,
            dino_config=args.dino_config,
            text_embeddings=args.text_embeddings,
            siglip=args.siglip,
            chunk_views=args.chunk_views,
        )
        predict_options = {
            "class_names": class_names,
            "class_embeddings": class_embeddings,
            "num_keyframes": args.num_keyframes,
            "keyframe_mode": args.keyframe_mode,
            "postprocess": args.postprocess,
            "postprocess_options": postprocess_options,
            "image_size": args.image_size,
            "view_names": source.names,
            "return_raw": args.raw,
            "progress": progress,
        }
        if args.stream_out:
            recon, summary_lines = _predict_streamed_out(args, predictor, source, predict_options)
        else:
            recon, summary_lines = _predict_and_export(args, predictor, source, predict_options, progress)
        progress("done", 1, 1)

    _print_summary(recon, len(source), summary_lines, time.perf_counter() - started)
    return 0


def _open_inputs(args: argparse.Namespace):
    """The views as an `ImageSource` read one at a time: image files (headers checked now) or video frames."""
    if args.video is not None:
        from datasets.video_io import VideoFrames

        source = VideoFrames(args.video, args.fps)
    else:
        from datasets.image_io import ImageFiles, collect_image_paths

        source = ImageFiles(collect_image_paths(args.images))
    if len(source) > MANY_VIEWS and args.chunk_views is None:
        LOG.warning(
            "%d views without --chunk-views: every view's outputs stay in memory until the end; "
            "pass --chunk-views 32 (and --stream-out) to bound memory",
            len(source),
        )
    return source


def _class_sets(args: argparse.Namespace) -> tuple[str, ...]:
    """The sets the vocabulary came from, in their order: they decide thing/stuff in panoptic.json."""
    from panst3r_core.classes.vocabulary import SETS_WITH_STUFF

    return tuple(args.classes) if args.classes and not args.class_names else SETS_WITH_STUFF


def _predict_and_export(args, predictor, source, predict_options, progress):
    """The whole scene in memory, then every output written (PLY/GLB and raw.npz included)."""
    from datasets.prediction_export import ExportOptions, export_reconstruction

    recon = predictor.predict(source, **predict_options)
    progress("write outputs", 0, 1)
    files = export_reconstruction(
        recon,
        args.out,
        ExportOptions(
            raw=args.raw,
            min_confidence=args.min_confidence,
            max_points=args.max_points,
            class_sets=_class_sets(args),
        ),
    )
    return recon, files.summary_lines()


def _predict_streamed_out(args, predictor, source, predict_options):
    """Each chunk written as it comes; the output folder appears only once complete."""
    from datasets.prediction_stream import StreamExportOptions, StreamingExport

    with StreamingExport(args.out, StreamExportOptions(class_sets=_class_sets(args))) as sink:
        recon = predictor.predict(source, sink=sink, **predict_options)
    return recon, sink.summary_lines()


def _check_arguments(args: argparse.Namespace) -> None:
    if not Path(args.weights).exists():
        raise FileNotFoundError(
            f"--weights {args.weights} does not exist; pass a .pth file or a model folder"
        )
    if args.class_embeddings is not None and not args.class_names:
        raise ValueError("--class-embeddings needs --class-names with one name per embedding row")
    if args.num_keyframes is not None and args.num_keyframes < 1:
        raise ValueError(f"--num-keyframes {args.num_keyframes}: give at least 1 (2 or more in practice)")
    if args.image_size < 16 or args.image_size % 16:
        raise ValueError(f"--image-size {args.image_size} must be a positive multiple of 16 (default 512)")
    if args.stream_out and args.chunk_views is None:
        raise ValueError(
            "--stream-out writes chunk by chunk; give --chunk-views N too (e.g. --chunk-views 32)"
        )
    if args.stream_out and args.raw:
        raise ValueError("--raw keeps every raw output in one file; it cannot be combined with --stream-out")
    if args.chunk_views is not None and args.chunk_views < 1:
        raise ValueError(f"--chunk-views {args.chunk_views}: give at least 1 (e.g. 32)")
    if args.video is None and args.fps != 1.0:
        LOG.warning("--fps applies to --video only; it is ignored for --images")
    if args.dino_config is not None and not Path(args.dino_config).is_file():
        raise FileNotFoundError(
            f"--dino-config {args.dino_config} does not exist; pass a Dinov2Config JSON file"
        )


def _vocabulary(args: argparse.Namespace):
    """(class names or None for the default, class embeddings array or None)."""
    import numpy as np

    from panst3r_core.classes import dedup_preserving_order, union_class_sets

    if args.class_embeddings is not None:
        path = Path(args.class_embeddings)
        if not path.is_file():
            raise FileNotFoundError(f"--class-embeddings {path} does not exist; pass a (C, 768) .npy file")
        try:
            embeddings = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise ValueError(
                f"--class-embeddings {path} is not a plain .npy array ({exc}); save it with np.save"
            ) from None
        if embeddings.ndim != 2 or embeddings.shape[0] != len(args.class_names):
            raise ValueError(
                f"--class-embeddings {path} has shape {embeddings.shape}; expected ({len(args.class_names)}, D) "
                "with one row per --class-names entry, in the same order"
            )
        return list(args.class_names), embeddings
    if args.class_names:
        names = dedup_preserving_order(args.class_names)
        return names, None
    if args.classes:
        return union_class_sets(args.classes), None
    return None, None


def _parse_options(items: list[str]) -> dict:
    import yaml

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--postprocess-option {item!r}: expected KEY=VALUE, e.g. cls_threshold=0.2")
        options[key.strip()] = yaml.safe_load(value)
    return options


class _StageProgress:
    """A progress bar over the prediction stages; callable as the predictor's progress callback. Stages that
    report counts (the streamed path's views) get a determinate bar with the count and an ETA."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress = None
        self._task = None
        self._stage: str | None = None

    def __enter__(self) -> _StageProgress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]predict[/bold] {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("starting", total=None)
        return self

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self._progress is None:
            return
        counted = total if total > 1 else None  # one-step stages: an indeterminate bar, no ETA
        if stage != self._stage:
            # a fresh task state per stage, so the ETA is measured on this stage's own rate
            self._stage = stage
            self._progress.reset(self._task, total=counted, completed=done, description=stage)
        else:
            self._progress.update(self._task, total=counted, completed=done)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.update(self._task, total=1, completed=1)
            self._progress.__exit__(*exc)


def _print_summary(recon, num_views: int, summary_lines: list[str], seconds: float) -> None:
    from rich.console import Console

    console = Console()
    console.print(
        f"[bold]{num_views} views[/bold], {len(recon.segments)} segments, "
        f"{len(recon.class_names)} classes, post-processing {recon.postprocess}, "
        f"keyframes {recon.keyframes}, {seconds:.1f} s"
    )
    stages = ", ".join(f"{k} {v:.2f} s" for k, v in recon.timings.items())
    console.print(f"stages: {stages}")
    for line in summary_lines:
        console.print(f"  {line}")
