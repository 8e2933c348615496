"""`panst3r predict`: images in, panoptic 3-D reconstruction out (PNG ids, visualisations, JSON, PLY, GLB)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

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
