"""Attention kernels at PanSt3R v1's shapes (512x384 views, 50 keyframes): time and deviation per kernel.

Each kernel of `panst3r_core.model.attention_kernels` (sdpa, cudnn, xformers) runs the model's own
`blocks.attention` inside `attention_kernel(name)`, on the shapes inference gives it:

- encoder self-attention: 32 views x 16 heads x 768 tokens, head dim 64, float32 (the official encoder) and
  bf16 (`--encoder-autocast`);
- decoder self-attention in the render pass: 32 views x 12 heads x 768 tokens, bf16;
- render cross-attention: 32 views' 24,576 queries against the memory of 50 keyframes (38,400 tokens), bf16;
- one keyframe's memory update: 768 queries against 38,400 memory tokens, bf16;
- DINOv2-L self-attention: 32 views x 16 heads x 973 tokens, bf16 (inference runs it through SDPA, so under
  `xformers` DINOv2 keeps SDPA's kernel: that row says what the other kernels would give it).

Reports milliseconds (median of CUDA-event timings), TFLOP/s (4 * Nq * Nk * d * heads * batch per call) and the
largest absolute difference from the `sdpa` kernel's output on the same inputs. CUDA only.

    python tests/benchmarks/attention_kernels.py --out runs/benchmarks/attention_kernels.json
"""

from __future__ import annotations

import argparse
import sys

import torch
from cuda_timing import cuda_or_none, time_calls, write_report

from panst3r_core.model.attention_kernels import attention_kernel
from panst3r_core.model.blocks import attention

SHAPES = {
    # name: (batch, heads, queries, keys, head dim, dtype)
    "encoder_self_fp32": (32, 16, 768, 768, 64, torch.float32),
    "encoder_self_bf16": (32, 16, 768, 768, 64, torch.bfloat16),
    "decoder_self_bf16": (32, 12, 768, 768, 64, torch.bfloat16),
    "render_cross_bf16": (1, 12, 32 * 768, 50 * 768, 64, torch.bfloat16),
    "memory_update_bf16": (1, 12, 768, 50 * 768, 64, torch.bfloat16),
    "dino_self_bf16": (32, 16, 973, 973, 64, torch.bfloat16),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kernels", nargs="+", default=["sdpa", "cudnn", "xformers"])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--iterations", type=int, default=20, help="timed calls per kernel and shape")
    parser.add_argument("--out", default="runs/benchmarks/attention_kernels.json")
    return parser.parse_args(argv)


def xformers_operator(q, k, v) -> str:
    """The operator xformers' dispatcher picks for these inputs (e.g. fa3F@..., fa2F@..., cutlassF-pt)."""
    from xformers.ops.fmha import _dispatch_fw  # noqa: PLC0415 - GPU extra
    from xformers.ops.fmha.common import Inputs  # noqa: PLC0415

    inputs = Inputs(query=q.transpose(1, 2), key=k.transpose(1, 2), value=v.transpose(1, 2))
    return _dispatch_fw(inputs, False).NAME


def measure_shape(name: str, kernels: list[str], iterations: int, device: torch.device) -> list[dict]:
    batch, heads, nq, nk, dim, dtype = SHAPES[name]
    generator = torch.Generator(device=device).manual_seed(0)
    q = torch.randn(batch, heads, nq, dim, device=device, dtype=dtype, generator=generator)
    k = torch.randn(batch, heads, nk, dim, device=device, dtype=dtype, generator=generator)
    v = torch.randn(batch, heads, nk, dim, device=device, dtype=dtype, generator=generator)
    flops = 4 * batch * heads * nq * nk * dim
    rows, reference = [], None
    for kernel in kernels:
        with attention_kernel(kernel, device) as ran:
            out = attention(q, k, v)
            ms = time_calls(lambda: attention(q, k, v), iterations)
        if reference is None:
            reference = out
        op = xformers_operator(q, k, v) if ran == "xformers" else None
        rows.append(
            {
                "shape": name,
                "kernel_asked": kernel,
                "kernel": ran,
                "ms": round(ms, 3),
                "tflops": round(flops / ms / 1e9, 1),
                "max_abs_diff_from_first": float((out.float() - reference.float()).abs().max()),
                "xformers_operator": op,
            }
        )
        print(
            f"{name:>20} {kernel:>9} ({op or ran:>8}) {ms:9.3f} ms {rows[-1]['tflops']:7.1f} TFLOP/s "
            f"max|diff| {rows[-1]['max_abs_diff_from_first']:.2e}",
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = cuda_or_none("attention_kernels.py")
    if device is None:
        return 2
    rows = [row for name in args.shapes for row in measure_shape(name, args.kernels, args.iterations, device)]
    write_report(args.out, "attention_kernels.py", device, {"results": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
