"""The prediction flags and their loading, shared by `panst3r predict` (one scene) and `panst3r predict-batch`
(many): the class vocabulary, post-processing options, the checks of the model flags, and the settings
flags of the batch command."""

from __future__ import annotations

import argparse
from pathlib import Path

from panst3r_core.model.attention_kernels import KERNELS
from panst3r_core.model.tf32_attention import ENCODER_ATTENTION


def add_vocabulary_arguments(parser: argparse.ArgumentParser) -> None:
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


def add_prediction_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """How each scene is predicted and exported (the flags `panst3r predict` has under the same names)."""
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
        help="stream the views in chunks of this many (device memory bounded by keyframes + chunk; same "
        "results); images are then read and resized chunk by chunk",
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
    parser.add_argument(
        "--amp",
        choices=["none", "bf16", "fp16"],
        default="none",
        help="mixed precision on CUDA (default none)",
    )
    parser.add_argument(
        "--encoder-autocast",
        action="store_true",
        help="with --amp: the MUSt3R encoder in that precision too, not float32 as the official encoder "
        "(about twice the encoder's speed; outputs close, not identical)",
    )
    parser.add_argument(
        "--encoder-attention",
        choices=list(ENCODER_ATTENTION),
        default="exact",
        help="attention of the float32 encoder on CUDA: exact (IEEE float32, as the official encoder; default) "
        "or tf32 (TF32 precision on tensor cores, as the encoder's matmuls: faster, outputs close)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the MUSt3R encoder and DINOv2 (compiling takes a while: for long sequences)",
    )
    parser.add_argument(
        "--attention",
        choices=list(KERNELS),
        default="auto",
        help="attention kernel on CUDA: auto (xformers where it runs, else sdpa: the fastest measured), sdpa "
        "(PyTorch's choice), cudnn or xformers; one asked for that cannot run falls back to sdpa with a warning",
    )
    parser.add_argument(
        "--no-tf32",
        dest="tf32",
        action="store_false",
        help="IEEE float32 matmuls on CUDA (default: TF32, as the official demo)",
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


def check_prediction_arguments(args: argparse.Namespace) -> None:
    """FileNotFoundError / ValueError naming the flag, before any model or image is loaded."""
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
    if getattr(args, "chunk_views", None) is not None:
        from panst3r_core.inference.streaming import check_chunk_views

        check_chunk_views(args.chunk_views)
    if args.dino_config is not None and not Path(args.dino_config).is_file():
        raise FileNotFoundError(
            f"--dino-config {args.dino_config} does not exist; pass a Dinov2Config JSON file"
        )


def class_vocabulary(args: argparse.Namespace):
    """(class names, or None for the checkpoint's default; class embeddings array or None)."""
    from panst3r_core.classes import dedup_preserving_order, union_class_sets

    if args.class_embeddings is not None:
        return list(args.class_names), load_class_embeddings(args.class_embeddings, len(args.class_names))
    if args.class_names:
        return dedup_preserving_order(args.class_names), None
    if args.classes:
        return union_class_sets(args.classes), None
    return None, None


def load_class_embeddings(path: str | Path, num_names: int):
    """The (num_names, D) array of an .npy file, with an error naming the flag and the fix otherwise."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--class-embeddings {path} does not exist; pass a (C, 768) .npy file")
    try:
        embeddings = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(
            f"--class-embeddings {path} is not a plain .npy array ({exc}); save it with np.save"
        ) from None
    if embeddings.ndim != 2 or embeddings.shape[0] != num_names:
        raise ValueError(
            f"--class-embeddings {path} has shape {embeddings.shape}; expected ({num_names}, D) "
            "with one row per --class-names entry, in the same order"
        )
    return embeddings


def export_class_sets(args: argparse.Namespace) -> tuple[str, ...]:
    """The built-in sets, in the order the vocabulary was made from, that decide thing/stuff in the
    exported panoptic.json."""
    from panst3r_core.classes.vocabulary import SETS_WITH_STUFF

    return tuple(args.classes) if args.classes and not args.class_names else SETS_WITH_STUFF


def parse_postprocess_options(items: list[str]) -> dict:
    """`--postprocess-option KEY=VALUE` items -> {key: YAML value}."""
    from panst3r_core.postprocess.spec import parse_option_items

    return parse_option_items(items, "--postprocess-option")
