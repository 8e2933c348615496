"""`panst3r predict`: images in, panoptic 3-D reconstruction out (PNG ids, visualisations, JSON, PLY, GLB)."""

from __future__ import annotations

import argparse
import time

from flows.cli.prediction_options import add_vocabulary_arguments as _add_vocabulary_arguments
from flows.cli.prediction_options import check_prediction_arguments as _check_arguments
from flows.cli.prediction_options import class_vocabulary as _vocabulary
from flows.cli.prediction_options import parse_postprocess_options as _parse_options

HELP = "images in, panoptic 3-D reconstruction out"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights",
        required=True,
        help="checkpoint: an official PanSt3R .pth file or a folder in our format (model.safetensors + config.json)",
    )
    parser.add_argument(
        "--images",
        required=True,
        nargs="+",
        metavar="DIR_OR_FILE",
        help="a folder of images (sorted by name) and/or image files, in view order",
    )
    parser.add_argument(
        "--out", required=True, help="output folder (created; existing files are overwritten)"
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
        help="stream the views in chunks of this many (device memory bounded by keyframes + chunk; same results)",
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


def run(args: argparse.Namespace) -> int:
    from datasets.image_io import load_images
    from datasets.prediction_export import ExportOptions, export_reconstruction
    from panst3r_core.classes.vocabulary import SETS_WITH_STUFF
    from panst3r_core.predictor import Predictor

    _check_arguments(args)
    class_names, class_embeddings = _vocabulary(args)
    postprocess_options = _parse_options(args.postprocess_option)
    if args.postprocess is not None:  # check before loading anything
        from panst3r_core.predictor import check_postprocess

        check_postprocess(args.postprocess, postprocess_options)
    started = time.perf_counter()

    with _StageProgress(enabled=not args.no_progress) as progress:
        progress("read images", 0, 1)
        images, paths = load_images(args.images)
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
        recon = predictor.predict(
            images,
            class_names=class_names,
            class_embeddings=class_embeddings,
            num_keyframes=args.num_keyframes,
            keyframe_mode=args.keyframe_mode,
            postprocess=args.postprocess,
            postprocess_options=postprocess_options,
            image_size=args.image_size,
            view_names=[p.stem for p in paths],
            return_raw=args.raw,
            progress=progress,
        )
        progress("write outputs", 0, 1)
        files = export_reconstruction(
            recon,
            args.out,
            ExportOptions(
                raw=args.raw,
                min_confidence=args.min_confidence,
                max_points=args.max_points,
                # The sets the vocabulary came from, in their order, decide thing/stuff in panoptic.json.
                class_sets=tuple(args.classes) if args.classes and not args.class_names else SETS_WITH_STUFF,
            ),
        )
        progress("done", 1, 1)

    _print_summary(recon, files, time.perf_counter() - started)
    return 0


class _StageProgress:
    """A progress bar over the prediction stages; callable as the predictor's progress callback."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress = None
        self._task = None
        self._stages: list[str] = []

    def __enter__(self) -> _StageProgress:
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]predict[/bold] {task.description}"),
                BarColumn(),
                TimeElapsedColumn(),
                transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("starting", total=None)
        return self

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self._progress is None:
            return
        if stage not in self._stages:
            self._stages.append(stage)
        label = stage if total <= 1 else f"{stage} ({done}/{total})"
        self._progress.update(self._task, description=label, completed=len(self._stages), total=None)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.update(self._task, total=len(self._stages), completed=len(self._stages))
            self._progress.__exit__(*exc)


def _print_summary(recon, files, seconds: float) -> None:
    from rich.console import Console

    console = Console()
    console.print(
        f"[bold]{recon.num_views} views[/bold], {len(recon.segments)} segments, "
        f"{len(recon.class_names)} classes, post-processing {recon.postprocess}, "
        f"keyframes {recon.keyframes}, {seconds:.1f} s"
    )
    stages = ", ".join(f"{k} {v:.2f} s" for k, v in recon.timings.items())
    console.print(f"stages: {stages}")
    for line in files.summary_lines():
        console.print(f"  {line}")
