"""`panst3r convert`: official PanSt3R checkpoint (.pth) -> our format (safetensors + JSON config)."""

from __future__ import annotations

import argparse
import logging

from panst3r_core.checkpoint.official import load_official_checkpoint
from panst3r_core.checkpoint.ours import save_checkpoint

HELP = "official checkpoint -> our format (safetensors + JSON)"
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", required=True, help="official PanSt3R checkpoint (.pth)")
    parser.add_argument("--out", required=True, help="output directory (model.safetensors + config.json)")
    parser.add_argument(
        "--dino-config",
        default=None,
        help="transformers Dinov2Config JSON, needed when the DINOv2 head count cannot be inferred",
    )
    parser.add_argument(
        "--class-names", nargs="*", default=None, help="class names to store in the metadata (optional)"
    )


def run(args: argparse.Namespace) -> int:
    loaded = load_official_checkpoint(args.weights, args.dino_config)
    metadata = dict(loaded.metadata)
    if args.class_names:
        metadata["class_names"] = list(args.class_names)
    out = save_checkpoint(loaded.model, args.out, metadata)
    count = sum(p.numel() for p in loaded.model.parameters())
    log.info("wrote %s (%d parameters, postprocess_default=%s)", out, count, metadata["postprocess_default"])
    return 0
