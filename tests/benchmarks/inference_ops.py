"""Kernel-launch proxy for keyframe inference, measurable on the CPU.

A GPU run of a 100-view scene is bound by the host: tens of thousands of small kernel launches, most of them
in the keyframe-memory loop. This script counts the tensor operations that reach a backend (after autocast
has inserted its casts, after composite ops are decomposed; views and other metadata-only ops excluded),
which is a close proxy for the number of CUDA kernel launches of the same run.

The model is a *skeleton*: the real depths (24-layer encoder and DINOv2, 12-layer decoder, 6-layer mask
transformer) with tiny widths, and tiny views, so the op structure is that of the full-size model while the
run takes seconds on a laptop CPU. Counts are per stage of `run_inference` plus post-processing.

    python tests/benchmarks/inference_ops.py                        # v1, 100 views, 50 keyframes, fp32
    python tests/benchmarks/inference_ops.py --amp bf16 --variant v2 --out runs/benchmarks/ops.json
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

# Ops that only change metadata (no kernel on a GPU).
METADATA_OPS = {
    "view",
    "_unsafe_view",
    "reshape",
    "alias",
    "as_strided",
    "expand",
    "permute",
    "transpose",
    "t",
    "unsqueeze",
    "squeeze",
    "slice",
    "select",
    "split",
    "split_with_sizes",
    "unbind",
    "detach",
    "lift_fresh",
    "_reshape_alias",
    "unflatten",
    "flatten",
    "narrow",
    "empty",
    "empty_strided",
    "is_same_size",
    "chunk",
}


class OpCounter(TorchDispatchMode):
    """Counts backend ops by name (overload packet) while active."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name not in METADATA_OPS:
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))


def skeleton_config(variant: str):
    from panst3r_core.model.config import (
        DecoderConfig,
        DinoConfig,
        EncoderConfig,
        InputMixerConfig,
        LoftUpConfig,
        PanopticDecoderConfig,
        PanSt3RConfig,
        PixelShuffleConfig,
    )

    encoder = EncoderConfig(embed_dim=32, depth=24, num_heads=2)
    decoder = DecoderConfig(enc_embed_dim=32, embed_dim=32, depth=12, num_heads=2)
    dino = DinoConfig(hidden_size=32, num_hidden_layers=24, num_attention_heads=2, model_id="skeleton")
    head = {"fpn_dim": [32], "hidden_dim": 32, "ff_dim": 64, "num_queries": 20, "num_heads": 2}
    if variant == "v1":
        panoptic = PanopticDecoderConfig(
            pixel_shuffle=PixelShuffleConfig(input_dim=96, hidden_dim_factor=1, fp_dim=[32, 16, 16, 16]),
            mask_dim=16,
            dec_layers=6,
            **head,
        )
    else:
        panoptic = PanopticDecoderConfig(
            pixel_shuffle=None,
            input_mixer=InputMixerConfig(in_dim=96, hidden_dim=32, num_heads=2, num_layers=3),
            loftup=LoftUpConfig(input_dim=32, dim=16, num_heads=4, num_layers=2),
            mask_dim=16,
            dec_layers=6,
            **head,
        )
    return PanSt3RConfig(encoder=encoder, decoder=decoder, dino=dino, panoptic=panoptic)


def count_ops(args: argparse.Namespace) -> dict:
    from panst3r_core.model.panst3r import PanSt3R
    from panst3r_core.predictor import Predictor

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = PanSt3R(skeleton_config(args.variant)).eval()
    predictor = Predictor(model=model, device="cpu", amp=args.amp, max_batch_size=args.max_batch_size)
    generator = torch.Generator().manual_seed(0)
    views = list(torch.rand(args.views, 3, args.height, args.width, generator=generator) * 2 - 1)
    embeddings = torch.randn(10, 768, generator=generator)
    names = [f"class_{i}" for i in range(10)]

    def run() -> None:
        predictor.predict(
            views,
            class_names=names,
            class_embeddings=embeddings,
            num_keyframes=args.keyframes,
            image_size=max(args.height, args.width),
            return_raw=args.raw,
        )

    run()  # warm-up: lazy initialisation stays out of the counts
    counter = OpCounter()
    with counter:
        run()
    top = counter.counts.most_common(args.top)
    return {
        "variant": args.variant,
        "amp": args.amp,
        "views": args.views,
        "keyframes": args.keyframes,
        "total_ops": sum(counter.counts.values()),
        "top_ops": dict(top),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", choices=["v1", "v2"], default="v1")
    parser.add_argument("--amp", choices=["none", "bf16"], default="none", help="autocast dtype (CPU bf16)")
    parser.add_argument("--views", type=int, default=100)
    parser.add_argument("--keyframes", type=int, default=50)
    parser.add_argument("--height", type=int, default=32, help="view height (multiple of 16)")
    parser.add_argument("--width", type=int, default=48, help="view width (multiple of 16)")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--raw", action="store_true", help="also return the raw outputs")
    parser.add_argument("--top", type=int, default=15, help="most frequent ops listed")
    parser.add_argument("--out", default=None, help="append the result as one JSON line to this file")
    args = parser.parse_args(argv)
    result = count_ops(args)
    print(f"{args.variant} amp={args.amp} views={args.views} keyframes={args.keyframes}")
    print(f"backend ops (kernel-launch proxy): {result['total_ops']}")
    for name, count in result["top_ops"].items():
        print(f"  {name:32s} {count:7d}")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a") as handle:
            handle.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
