"""The memory update's attention: a masked bucket against the fused prefix kernels, at PanSt3R v1's shapes.

A single-keyframe memory update (`panst3r_core.model.must3r_memory_graphs`) attends with one image's 768
queries (12 heads, head dim 64, bf16) to the stored tokens of the keyframes before it, in a buffer sized for 50
keyframes (38,400 rows). Per stored length, this times `prefix_attention.attend_prefix` with each kernel:

- `mask`: the graphs' bucket (half the buffer or all of it, `MemoryStepGraphs.buckets`) with unfilled rows
  masked out, as the graphs attended before the fused kernels;
- `flash`: one FlashAttention call that stops at the stored length.

Reports milliseconds (median of CUDA-event timings), TFLOP/s on the stored keys (4 * Nq * length * d * heads)
and each kernel's relative difference from `mask`, plus the attention time of a whole 50-keyframe memory (its 48
single updates x 12 layers; the first update adds two keyframes at once) per kernel.

Timed one call at a time, the small calls are bound by the host's launches; inside the memory's CUDA graphs
they are not. So `--memory` also times what inference runs: the whole memory of 50 keyframes of random
tokens built by `KVMemory` with its CUDA graphs (panst3r_v1_512's decoder with random weights, bf16 autocast;
median of 5 builds after one) with each kernel in turn. CUDA only.

    python tests/benchmarks/prefix_attention.py --memory --out runs/benchmarks/prefix_attention.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from cuda_timing import cuda_or_none, time_calls, write_report

from panst3r_core.model.must3r_memory_graphs import MemoryStepGraphs
from panst3r_core.model.prefix_attention import (
    PREFIX_KERNELS,
    KeyPrefix,
    attend_prefix,
    choose_prefix_kernel,
    prefix_kernel,
)

HEADS, DIM, TOKENS, KEYFRAMES, LAYERS = 12, 64, 768, 50, 12


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=20, help="timed calls per kernel and length")
    parser.add_argument("--memory", action="store_true", help="also time whole memory builds per kernel")
    parser.add_argument("--out", default="runs/benchmarks/prefix_attention.json")
    return parser.parse_args(argv)


def measure(stored: int, iterations: int, buffers, buckets: list[int]) -> list[dict]:
    q, keys, values = buffers
    bucket = next(b for b in buckets if b >= stored)
    prefix = KeyPrefix(torch.tensor([stored], dtype=torch.int32, device=q.device))
    k, v = keys[:, :, :bucket], values[:, :, :bucket]
    reference = attend_prefix(q, k, v, prefix, "mask").float()
    flops = 4 * HEADS * TOKENS * stored * DIM
    rows = []
    for kernel in PREFIX_KERNELS:
        out = attend_prefix(q, k, v, prefix, kernel).float()
        ms = time_calls(lambda kernel=kernel: attend_prefix(q, k, v, prefix, kernel), iterations)
        rows.append(
            {
                "stored_tokens": stored,
                "bucket": bucket,
                "kernel": kernel,
                "ms": round(ms, 4),
                "tflops_on_stored": round(flops / ms / 1e9, 1),
                "relative_difference_from_mask": float((out - reference).norm() / reference.norm()),
            }
        )
        print(
            f"{stored:>6} of {bucket:>6} {kernel:>6} {ms:8.4f} ms {rows[-1]['tflops_on_stored']:7.1f} TFLOP/s"
        )
    return rows


def memory_builds(device: torch.device) -> list[dict]:
    """Seconds to build a 50-keyframe memory with graphs, per kernel: `KVMemory` as inference
    builds it."""
    from panst3r_core.model.must3r_encoder import patch_positions
    from panst3r_core.model.must3r_kv_memory import KVMemory
    from panst3r_core.model.variants import build_model

    torch.manual_seed(0)
    decoder = build_model("panst3r_v1_512", device=device).eval().must3r_decoder
    width = decoder.cfg.enc_embed_dim
    tokens = [torch.randn(1, TOKENS, width, device=device) for _ in range(KEYFRAMES)]
    positions = [patch_positions(1, 24, 32, device) for _ in range(KEYFRAMES)]
    rows, probed = [], prefix_kernel(device, torch.bfloat16)
    for kernel in PREFIX_KERNELS:
        choose_prefix_kernel(device, torch.bfloat16, kernel)
        times = []
        for _ in range(6):
            torch.cuda.synchronize(device)
            start = time.perf_counter()
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
                memory = KVMemory(
                    decoder, TOKENS * KEYFRAMES, dtype=torch.bfloat16, device=device, cuda_graphs=True
                )
                memory.add(tokens[:2], positions[:2])
                for i in range(2, KEYFRAMES):
                    memory.add(tokens[i : i + 1], positions[i : i + 1])
            torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        rows.append({"kernel": kernel, "seconds": round(statistics.median(times[1:]), 4)})
        print(f"memory of {KEYFRAMES} keyframes, {kernel}: {rows[-1]['seconds']:.4f} s", flush=True)
    choose_prefix_kernel(device, torch.bfloat16, probed)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = cuda_or_none("prefix_attention.py")
    if device is None:
        return 2
    capacity = KEYFRAMES * TOKENS
    gen = torch.Generator(device=device).manual_seed(0)
    shape = (1, HEADS, capacity, DIM)
    q = torch.randn(1, HEADS, TOKENS, DIM, device=device, dtype=torch.bfloat16, generator=gen)
    keys = torch.randn(shape, device=device, dtype=torch.bfloat16, generator=gen)
    values = torch.randn(shape, device=device, dtype=torch.bfloat16, generator=gen)
    buckets = MemoryStepGraphs(capacity, capture=False).buckets
    rows = [
        row
        for stored in range(2 * TOKENS, capacity, TOKENS)  # the single updates: 2 .. 49 keyframes stored
        for row in measure(stored, args.iterations, (q, keys, values), buckets)
    ]
    memory_ms = {}
    for kernel in PREFIX_KERNELS:
        memory_ms[kernel] = round(LAYERS * sum(r["ms"] for r in rows if r["kernel"] == kernel), 1)
    print("attention of a 50-keyframe memory's single updates (ms):", memory_ms)
    fields = {
        "kernel_chosen_by_probe": prefix_kernel(device, torch.bfloat16),
        "memory_attention_ms": memory_ms,
        "results": rows,
        "memory_builds": memory_builds(device) if args.memory else None,
    }
    write_report(args.out, "prefix_attention.py", device, fields)
    return 0


if __name__ == "__main__":
    sys.exit(main())
