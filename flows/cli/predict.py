"""`panst3r predict`: images in, panoptic 3-D reconstruction out (PNG ids, visualisations, JSON, PLY, GLB)."""

from __future__ import annotations

import argparse
import logging
import time

from flows.cli.prediction_options import (
    add_prediction_settings_arguments,
    add_vocabulary_arguments,
    check_prediction_arguments,
    class_vocabulary,
    export_class_sets,
    parse_postprocess_options,
)

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
    add_vocabulary_arguments(parser)
    add_prediction_settings_arguments(parser)
    parser.add_argument(
        "--stream-out",
        action="store_true",
        help="with --chunk-views: write each chunk to OUT/prediction.zarr and OUT/panoptic/ as it comes, so "
        "host memory stays bounded for thousands of views (no scene.ply / scene.glb / raw.npz); OUT appears "
        "only when complete",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. in logs)")


def run(args: argparse.Namespace) -> int:
    from panst3r_core.predictor import Predictor

    check_prediction_arguments(args)
    _check_input_arguments(args)
    class_names, class_embeddings = class_vocabulary(args)
    postprocess_options = parse_postprocess_options(args.postprocess_option)
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
            encoder_autocast=args.encoder_autocast,
            encoder_attention=args.encoder_attention,
            compile=args.compile,
            attention=args.attention,
            tf32=args.tf32,
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
            class_sets=export_class_sets(args),
        ),
    )
    return recon, files.summary_lines()


def _predict_streamed_out(args, predictor, source, predict_options):
    """Each chunk written as it comes; the output folder appears only once complete."""
    from datasets.prediction_stream import StreamExportOptions, StreamingExport

    with StreamingExport(args.out, StreamExportOptions(class_sets=export_class_sets(args))) as sink:
        recon = predictor.predict(source, sink=sink, **predict_options)
    return recon, sink.summary_lines()


def _check_input_arguments(args: argparse.Namespace) -> None:
    """The flags of this command's inputs and streamed output (the model flags: `check_prediction_arguments`)."""
    if args.stream_out and args.chunk_views is None:
        raise ValueError(
            "--stream-out writes chunk by chunk; give --chunk-views N too (e.g. --chunk-views 32)"
        )
    if args.stream_out and args.raw:
        raise ValueError("--raw keeps every raw output in one file; it cannot be combined with --stream-out")
    if args.video is None and args.fps != 1.0:
        LOG.warning("--fps applies to --video only; it is ignored for --images")


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
