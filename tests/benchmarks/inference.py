"""Inference benchmark: full-size PanSt3R v1 / v2 with random weights, end to end on one device.

For every (variant, views, precision): random 512x384 views (uint8 on the host, as after decoding) ->
`Predictor.predict` (upload, encoder, keyframe memory, render, DINO, upscaler, mask transformer,
non-keyframes, standard_v2 post-processing on the same device, copy of the results to the host).
Keyframes: all views up to 50 (as the official measurement: 100 views -> 50 keyframes).
Reports images per second (views / end-to-end seconds), end-to-end seconds per scene, the forward and
post-processing parts, and peak GPU memory; prints a table and writes JSON (default
runs/benchmarks/inference.json). A timed run starts after the previous run's result is released, as a caller
moving from one scene to the next does: the pinned host buffers of its copies are then reused instead of
page-locked anew (which cost the second of two kept results 0.3-0.6 s at 100 views).

GPU:   python tests/benchmarks/inference.py --device cuda
       (or per variant, within a time limit: --variant panst3r_v1_512, then --variant panst3r_v2_512 --append)
Smoke: python tests/benchmarks/inference.py --device cpu --variant tiny_v1 --views 4 --precision fp32
Where the time goes: every row is followed by its stages (preprocess, text_embeddings, inference,
postprocess, to_cpu: host-synchronised) and the device time of each inference stage (encoder, memory,
render, dino, pixel_features, mask_transformer, non_keyframes, geometry: CUDA events, no extra syncs);
add --profile runs/benchmarks/profiles for one op table per configuration.

Rows also vary the encoder's precision (--encoder fp32 autocast: the official float32 MUSt3R encoder, or the
run's autocast), the attention kernel (--attention sdpa cudnn xformers auto; a row says which one ran)
float32 matmuls (--fp32-matmul tf32 ieee: TF32 as the official demo, or IEEE), the float32 encoder's attention
(--encoder-attention exact tf32) and torch.compile of the encoder and DINOv2 (--compile off on; compiled during
the warm-up, so give --warmup 1 or more to time it compiled). With kept outputs, each
row reports its deviation from the first configuration of the same precision and views (list the
reference first, e.g. --encoder fp32 autocast --attention sdpa xformers).
Random weights make every query a post-processing candidate; --candidate-queries N gives the other queries
the class logits of a trained model's unused ones (the shipped synthetic model keeps 50-52 of its 100
queries as candidates on 16-view scenes), so that the kept mask logits scale as they would in use.
Thousands of views: --chunk-views 64 --discard-outputs --distinct-views 200.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from panst3r_core.inference.encoder_pass import resolve_encoder_attention
from panst3r_core.model.attention_kernels import KERNELS, resolve_kernel
from panst3r_core.model.tf32_attention import ENCODER_ATTENTION

PRECISION_TO_AMP = {"fp32": "none", "bf16": "bf16", "fp16": "fp16"}
SETTING_NAMES = ("encoder", "attention", "fp32_matmul", "encoder_attention", "compile")
"""The settings a row varies besides precision and views (a deviation names its reference by them)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda, cuda:N or cpu"
    )
    parser.add_argument(
        "--variant",
        "--variants",
        dest="variants",
        nargs="+",
        default=["panst3r_v1_512", "panst3r_v2_512"],
        help="registered model variants (default: panst3r_v1_512 panst3r_v2_512)",
    )
    parser.add_argument("--views", nargs="+", type=int, default=[10, 50, 100], help="views per scene")
    parser.add_argument(
        "--precision",
        "--precisions",
        dest="precisions",
        nargs="+",
        choices=list(PRECISION_TO_AMP),
        default=["fp32", "bf16"],
        help="fp32 (matmuls per --fp32-matmul), bf16 or fp16 autocast",
    )
    parser.add_argument("--width", type=int, default=512, help="view width (multiple of 16)")
    parser.add_argument("--height", type=int, default=384, help="view height (multiple of 16)")
    parser.add_argument("--max-keyframes", type=int, default=50, help="keyframes = min(views, this)")
    parser.add_argument("--num-classes", type=int, default=100, help="random class embeddings (768-d)")
    parser.add_argument("--postprocess", default="standard_v2", help="post-processor name")
    parser.add_argument(
        "--repeats", type=int, default=2, help="timed runs per configuration (median reported)"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (CUDA kernels, allocator)")
    parser.add_argument("--max-batch-size", type=int, default=None, help="views per batched forward")

    def sweep(flag: str, choices: list[str], description: str, default: str | None = None) -> None:
        """A setting whose values each give their own rows (default: the first choice)."""
        parser.add_argument(
            flag, nargs="+", choices=choices, default=[default or choices[0]], help=description
        )

    sweep(
        "--fp32-matmul",
        ["tf32", "ieee"],
        "float32 matmuls on CUDA: tf32 (the official demo's and the predictor's default) and/or ieee",
    )
    parser.add_argument(
        "--no-cuda-graphs", action="store_true", help="keyframe-memory updates without CUDA graphs"
    )
    parser.add_argument(
        "--chunk-views",
        type=int,
        default=None,
        help="stream views in chunks of this many (None: all at once)",
    )
    parser.add_argument(
        "--discard-outputs",
        action="store_true",
        help="with --chunk-views: stream every chunk into a sink that drops it (device memory and speed of "
        "the streamed path without host memory for thousands of views' outputs)",
    )
    parser.add_argument(
        "--distinct-views",
        type=int,
        default=None,
        help="generate at most this many random views and repeat them (cuts the set-up of 10,000 views)",
    )
    sweep(
        "--encoder",
        ["fp32", "autocast"],
        "MUSt3R encoder precision: fp32 (official, default) and/or autocast (the run's bf16/fp16)",
    )
    sweep(
        "--encoder-attention",
        list(ENCODER_ATTENTION),
        "attention of the float32 encoder on CUDA: exact (official, default) and/or tf32",
    )
    sweep(
        "--compile",
        ["off", "on"],
        "torch.compile the MUSt3R encoder and DINOv2: off (default) and/or on (compiled in the warm-up)",
    )
    sweep(
        "--attention",
        list(KERNELS),
        "attention kernels to time (one that cannot run falls back to sdpa; the row records what ran)",
        default="sdpa",
    )
    parser.add_argument(
        "--candidate-queries",
        type=int,
        default=None,
        help="only this many queries stay post-processing candidates (default: all, as random weights give)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--profile",
        default=None,
        metavar="DIR",
        help="also profile one run per configuration; op tables (sorted by device time) written to DIR",
    )
    parser.add_argument("--out", default="runs/benchmarks/inference.json", help="results JSON path")
    parser.add_argument(
        "--append",
        action="store_true",
        help="add the rows to an existing --out file (e.g. one call per variant within a time limit)",
    )
    args = parser.parse_args(argv)
    if args.discard_outputs and args.chunk_views is None:
        parser.error("--discard-outputs streams chunks: give --chunk-views N too")
    return args


def random_views(num_views: int, height: int, width: int, seed: int) -> list[np.ndarray]:
    """Smooth random images (low-frequency colour fields + noise): uint8 (H, W, 3) on the host."""
    rng = np.random.default_rng(seed)
    views = []
    for _ in range(num_views):
        coarse = rng.integers(0, 256, (height // 32 + 1, width // 32 + 1, 3)).astype(np.float32)
        upsampled = np.kron(coarse, np.ones((32, 32, 1), np.float32))[:height, :width]
        noisy = upsampled + rng.normal(0, 12, (height, width, 3))
        views.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return views


def build_random_model(
    variant: str, seed: int, device: torch.device, candidate_queries: int | None = None
) -> torch.nn.Module:
    """Random weights, initialised directly on the device (seconds instead of a minute for 879 M params).
    With `candidate_queries`, the queries after the first N get class logits of -20 (probability ~2e-9)."""
    from panst3r_core.model.variants import build_model

    torch.manual_seed(seed)
    model = build_model(variant, device=device).eval()
    if candidate_queries is not None:
        head = model.panoptic_decoder.mask_transformer
        random_logits = head.class_logits

        def trained_like_logits(queries, class_embeddings):
            logits = random_logits(queries, class_embeddings)
            return torch.cat(
                [logits[:, :candidate_queries], torch.full_like(logits[:, candidate_queries:], -20.0)], 1
            )

        head.class_logits = trained_like_logits
    return model


def deviation(reference, recon) -> dict:
    """How far a reconstruction is from the reference one of the same views: the median relative distance of
    the world points, and the share of pixels whose owning query (the panoptic id's query) is the same."""
    points = np.stack(recon.pts3d).reshape(-1, 3)
    ref_points = np.stack(reference.pts3d).reshape(-1, 3)
    relative = np.linalg.norm(points - ref_points, axis=1) / np.maximum(
        np.linalg.norm(ref_points, axis=1), 1e-6
    )

    def owners(r):
        query_of = np.zeros(max((s.id for s in r.segments), default=0) + 1, dtype=np.int64) - 1
        for segment in r.segments:
            query_of[segment.id] = segment.query_id
        return query_of[np.stack(r.panoptic)]

    return {
        "pts3d_median_relative_difference": round(float(np.median(relative)), 6),
        "panoptic_pixel_agreement": round(float(np.mean(owners(recon) == owners(reference))), 6),
        "segments": len(recon.segments),
        "reference_segments": len(reference.segments),
    }


def profile_one(once, device, path: Path) -> None:
    """One extra run of `once()` under torch.profiler: the ops table sorted by device time, written as text."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=False) as prof:
        once()
    sort_key = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(prof.key_averages().table(sort_by=sort_key, row_limit=40) + "\n")


def run_one(
    predictor, views, embeddings, class_names, num_keyframes, postprocess, device, discard=False
) -> dict:
    from panst3r_core.reconstruction_sink import ReconstructionSink

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    recon = predictor.predict(
        views,
        class_names=class_names,
        class_embeddings=embeddings,
        num_keyframes=num_keyframes,
        postprocess=postprocess,
        sink=ReconstructionSink() if discard else None,  # the base sink drops every chunk
    )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "timings": recon.timings, "segments": len(recon.segments), "recon": recon}


def measure(args, once, num_views: int, device) -> dict:
    """Timings of one configuration, `once()` being one run of it (median of the repeats after the warm-up),
    or its out-of-memory error."""
    try:
        for _ in range(args.warmup):
            once()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        runs = []
        for _ in range(max(1, args.repeats)):
            if runs:  # a caller done with a scene's result: its pinned host buffers serve the next scene
                runs[-1]["recon"] = None
            runs.append(once())
    except torch.cuda.OutOfMemoryError as exc:  # one configuration too large: record and go on
        return {"error": f"out of memory: {str(exc).splitlines()[0]}"}
    seconds = statistics.median(r["seconds"] for r in runs)
    median_stage = {
        stage: statistics.median(r["timings"].get(stage, 0.0) for r in runs) for stage in runs[0]["timings"]
    }
    return {
        "end_to_end_s": round(seconds, 4),
        "images_per_s": round(num_views / seconds, 2),
        "forward_s": round(median_stage.get("inference", float("nan")), 4),
        # the official table's images/s is views / forward time (post-processing excluded)
        "forward_images_per_s": round(num_views / median_stage["inference"], 2)
        if median_stage.get("inference")
        else None,
        "postprocess_s": round(median_stage.get("postprocess", float("nan")), 4),
        "stages_s": {k: round(v, 4) for k, v in median_stage.items()},
        "segments": runs[-1]["segments"],
        "runs_s": [round(r["seconds"], 4) for r in runs],
        "peak_gpu_mem_gib": (
            round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None
        ),
        "recon": None if args.discard_outputs else runs[-1]["recon"],
    }


def benchmark(args: argparse.Namespace) -> dict:
    from panst3r_core.predictor import Predictor

    device = torch.device(args.device)
    rng = np.random.default_rng(args.seed)
    class_names = [f"class_{i:03d}" for i in range(args.num_classes)]
    embeddings = rng.standard_normal((args.num_classes, 768)).astype(np.float32)
    results = []
    for variant in args.variants:
        model = build_random_model(variant, args.seed, device, args.candidate_queries)
        num_params = sum(p.numel() for p in model.parameters())
        settings = [
            (p, e, a, m, ea, c)
            for p in args.precisions
            for e in args.encoder
            for a in args.attention
            for m in args.fp32_matmul
            for ea in args.encoder_attention
            for c in args.compile
        ]
        references: dict[tuple, tuple] = {}  # (precision, views) -> (its first configuration, reconstruction)
        for precision, encoder, attention, matmul, encoder_attention, compiled in settings:
            predictor = Predictor(
                model=model,
                device=device,
                amp=PRECISION_TO_AMP[precision],
                max_batch_size=args.max_batch_size,
                cuda_graphs=not args.no_cuda_graphs,
                chunk_views=args.chunk_views,
                encoder_autocast=encoder == "autocast",
                attention=attention,
                tf32=matmul == "tf32",
                encoder_attention=encoder_attention,
                compile=compiled == "on",
            )
            for num_views in args.views:
                distinct = min(num_views, args.distinct_views or num_views)
                base = random_views(distinct, args.height, args.width, args.seed + num_views)
                views = [base[i % distinct] for i in range(num_views)]
                num_keyframes = min(num_views, args.max_keyframes)
                row = {
                    "variant": variant,
                    "params_m": round(num_params / 1e6, 1),
                    "precision": precision,
                    "encoder": encoder,
                    "attention_asked": attention,
                    "attention": resolve_kernel(attention, device),
                    "fp32_matmul": matmul if device.type == "cuda" else "ieee",
                    "encoder_attention": resolve_encoder_attention(
                        encoder_attention, device, encoder == "autocast"
                    ),
                    "compile": compiled,
                    "views": num_views,
                    "keyframes": num_keyframes,
                    "chunk_views": args.chunk_views,
                    "candidate_queries": args.candidate_queries,
                    "outputs": "discarded" if args.discard_outputs else "kept",
                    "distinct_views": distinct,
                    "resolution": f"{args.width}x{args.height}",
                }
                once = functools.partial(
                    run_one,
                    predictor,
                    views,
                    embeddings,
                    class_names,
                    num_keyframes,
                    args.postprocess,
                    device,
                    args.discard_outputs,
                )
                row.update(measure(args, once, len(views), device))
                recon = row.pop("recon", None)
                key = (precision, num_views)
                if recon is not None and key not in references:
                    references[key] = ((encoder, attention, matmul, encoder_attention, compiled), recon)
                elif recon is not None:
                    reference, reference_recon = references[key]
                    row["deviation"] = {
                        "from": dict(zip(SETTING_NAMES, reference)),
                        **deviation(reference_recon, recon),
                    }
                if "error" in row:
                    torch.cuda.empty_cache()
                elif args.profile:
                    name = (
                        f"profile_{variant}_{precision}_{encoder}_{attention}_{matmul}_{encoder_attention}"
                        f"_{compiled}_{num_views}views.txt"
                    )
                    table = Path(args.profile) / name
                    profile_one(once, device, table)
                    row["profile"] = str(table)
                results.append(row)
                print_row(row)
        del model, predictor, references
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return {
        "benchmark": "panst3r inference end to end (random weights)",
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_graphs": device.type == "cuda" and not args.no_cuda_graphs,
        "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
        "postprocess": args.postprocess,
        "num_classes": args.num_classes,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "results": results,
    }


COLUMNS = [
    ("variant", "variant", 16),
    ("precision", "prec", 5),
    ("encoder", "enc", 8),
    ("attention", "attn", 8),
    ("fp32_matmul", "mm", 4),
    ("encoder_attention", "encattn", 7),
    ("compile", "comp", 4),
    ("views", "views", 5),
    ("keyframes", "kf", 3),
    ("chunk_views", "chunk", 5),
    ("images_per_s", "img/s", 8),
    ("end_to_end_s", "e2e s", 8),
    ("forward_s", "fwd s", 8),
    ("postprocess_s", "post s", 8),
    ("peak_gpu_mem_gib", "peak GiB", 8),
]
_header_printed = False


def print_row(row: dict) -> None:
    global _header_printed
    if not _header_printed:
        print(" ".join(f"{title:>{width}}" for _, title, width in COLUMNS), flush=True)
        _header_printed = True
    if "error" in row:
        lead = " ".join(f"{row[key]!s:>{width}}" for key, _, width in COLUMNS[:5])
        print(f"{lead}  {row['error']}", flush=True)
        return
    cells = []
    for key, _, width in COLUMNS:
        value = row.get(key)
        text = "-" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))
        cells.append(f"{text:>{width}}")
    print(" ".join(cells), flush=True)
    # stage breakdown: host-synchronised stages, then the device time of each inference stage (CUDA events)
    stages = row.get("stages_s", {})
    outer = [f"{k} {v:.3f}" for k, v in stages.items() if not k.startswith("inference.")]
    inner = [f"{k.split('.', 1)[1]} {v:.3f}" for k, v in stages.items() if k.startswith("inference.")]
    print(f"    stages s: {' | '.join(outer)}", flush=True)
    if "deviation" in row:
        print(f"    deviation: {row['deviation']}", flush=True)
    if inner:
        print(f"    inference stages s: {' | '.join(inner)}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.width % 16 or args.height % 16:
        raise SystemExit(f"--width {args.width} / --height {args.height} must be multiples of 16")
    report = benchmark(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.append and out.is_file():
        report["results"] = json.loads(out.read_text()).get("results", []) + report["results"]
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"results written to {out}")
    return 1 if any("error" in r for r in report["results"]) else 0


if __name__ == "__main__":
    sys.exit(main())
