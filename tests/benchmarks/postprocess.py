"""Benchmark of the post-processing: our QUBO annealer vs the official one, and standard_v2 at scale.

    .venv/bin/python tests/benchmarks/postprocess.py [--out runs/benchmarks/postprocess.json] [--quick]

1. QUBO on a 200-query matrix built from synthetic soft masks: the official schedule (20 restarts x
   10,000 proposals) restated literally below (global numpy RNG, full quadratic energy per proposal,
   one restart after the other) against our incremental, batched annealer; energy and seconds.
2. standard_v2 on 100 views x 200 queries at 384x512 (mask logits at stride 2), CPU, and CUDA if
   available; plus the official dense loop restated literally on fewer views for a like-for-like ratio.
Prints a table and writes the numbers to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from panst3r_core.postprocess.annealing import AnnealingOptions, anneal_qubo, qubo_energy
from panst3r_core.postprocess.common import class_probabilities
from panst3r_core.postprocess.qubo import qubo_matrix
from panst3r_core.postprocess.standard import STANDARD_V2, standard_postprocess


def official_annealing(matrix: np.ndarray, num_iters=10000, T0=0.5, T_end=1e-4, lambda_reg=1e-3, redo=20):
    """The official solver as specified: full energy per proposal, restarts one after the other."""

    def energy(x):
        return x @ matrix @ x + lambda_reg * np.mean(x)

    n = matrix.shape[0]
    alpha = (T_end / T0) ** (1.0 / num_iters)
    best_overall, best_energy_overall = None, np.inf
    for _ in range(redo):
        x = np.random.randint(0, 2, n)
        current = energy(x)
        best, best_energy = x.copy(), current
        temperature = T0
        for _ in range(num_iters):
            i = np.random.randint(n)
            proposal = x.copy()
            proposal[i] = 1 - proposal[i]
            proposed = energy(proposal)
            delta = proposed - current
            if delta < 0 or np.random.rand() < np.exp(-delta / temperature):
                x, current = proposal, proposed
                if current < best_energy:
                    best, best_energy = x.copy(), current
            temperature *= alpha
        if best_energy < best_energy_overall:
            best_overall, best_energy_overall = best, best_energy
    return best_overall, float(best_energy_overall)


def synthetic_mask_logits(num_queries, num_views, height, width, seed, blob_grid=(6, 8)):
    """Per view (Q, height, width) logits: smooth random fields sharpened around the per-pixel winner,
    so each query dominates a few regions (mask ~0.98 there) and fades out elsewhere; ~3/4 of the
    queries have a class probability above 0.1."""
    generator = torch.Generator().manual_seed(seed)
    views = []
    for _ in range(num_views):
        coarse = torch.randn(num_queries, 1, *blob_grid, generator=generator)
        smooth = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)[:, 0]
        views.append(12.0 * (smooth - smooth.max(dim=0).values) + 4.0)
    class_logits = torch.randn(num_queries, 100, generator=generator) * 1.2 - 4.5
    return class_logits, views


def bench_qubo(num_queries: int, seeds: list[int], official_seeds: int, matrix_seed: int) -> dict:
    class_logits, views = synthetic_mask_logits(num_queries, 2, 48, 64, seed=matrix_seed)
    shapes = [(96, 128)] * len(views)
    start = time.perf_counter()
    matrix = qubo_matrix(views, shapes, class_probabilities(class_logits)).numpy()
    result = {"num_queries": num_queries, "matrix_seed": matrix_seed}
    result["matrix_seconds"] = time.perf_counter() - start
    result["ours"], result["official"] = [], []
    for restarts in (20, AnnealingOptions().num_restarts):
        for seed in seeds:
            start = time.perf_counter()
            ours = anneal_qubo(matrix, AnnealingOptions(seed=seed, num_restarts=restarts))
            seconds = time.perf_counter() - start
            result["ours"].append(
                {"restarts": restarts, "seed": seed, "energy": ours.energy, "seconds": seconds}
            )
    for seed in seeds[:official_seeds]:
        np.random.seed(seed)
        start = time.perf_counter()
        solution, energy = official_annealing(matrix)
        seconds = time.perf_counter() - start
        recomputed = float(qubo_energy(matrix, solution, 1e-3))
        result["official"].append(
            {
                "restarts": 20,
                "seed": seed,
                "energy": energy,
                "energy_recomputed": recomputed,
                "seconds": seconds,
            }
        )
    return result


def official_standard_dense(
    class_logits, views, shape, cls_threshold=0.1, mask_threshold=0.25, overlap_threshold=0.5, niters=2
):
    """The official v2 loop restated: dense (Q, V, H, W) masks, one candidate at a time."""
    scores, labels = class_logits.sigmoid().max(-1)
    masks = torch.stack(
        [F.interpolate(v.sigmoid()[None], size=shape, mode="bilinear", align_corners=False)[0] for v in views]
    ).transpose(0, 1)
    keep = scores > cls_threshold
    cur_scores, cur_masks = scores[keep], masks[keep]
    segments = 0
    for _ in range(niters):
        pan = torch.zeros(masks.shape[1:], dtype=torch.int32)
        prob_masks = cur_scores.view(-1, 1, 1, 1) * cur_masks
        owner = prob_masks.argmax(0)
        accepted = []
        for k in range(cur_masks.shape[0]):
            original_area = (cur_masks[k] >= 0.5).sum().item()
            region = (owner == k) & (cur_masks[k] >= mask_threshold)
            area = region.sum().item()
            if area > 0 and original_area > 0 and area / original_area >= overlap_threshold:
                accepted.append(k)
                pan[region] = len(accepted)
        segments = len(accepted)
        cur_scores, cur_masks = cur_scores[accepted], cur_masks[accepted]
    return pan, segments


def bench_standard(num_views, num_queries, height, width, device, official_views) -> dict:
    class_logits, views = synthetic_mask_logits(num_queries, num_views, height // 2, width // 2, seed=1)
    shapes = [(height, width)] * num_views
    entry = {
        "num_views": num_views,
        "num_queries": num_queries,
        "height": height,
        "width": width,
        "device": device,
    }
    class_logits_d = class_logits.to(device)
    views_d = [v.to(device) for v in views]
    if device == "cuda":
        standard_postprocess(class_logits_d, views_d[:2], shapes[:2], STANDARD_V2)  # warm-up
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = standard_postprocess(class_logits_d, views_d, shapes, STANDARD_V2)
    if device == "cuda":
        torch.cuda.synchronize()
    entry["ours_seconds"] = time.perf_counter() - start
    entry["segments"] = len(result.segments_info)
    entry["candidates"] = int((class_logits.sigmoid().max(-1).values > 0.1).sum())
    if official_views and device == "cpu":
        sub_views, sub_shapes = views[:official_views], shapes[:official_views]
        start = time.perf_counter()
        ours_small = standard_postprocess(class_logits, sub_views, sub_shapes, STANDARD_V2)
        entry["ours_seconds_at_official_views"] = time.perf_counter() - start
        start = time.perf_counter()
        pan, segments = official_standard_dense(class_logits, sub_views, (height, width))
        entry["official_dense_seconds"] = time.perf_counter() - start
        entry["official_views"] = official_views
        entry["same_maps_as_official"] = bool(
            segments == len(ours_small.segments_info)
            and all(torch.equal(pan[v], ours_small.pan[v]) for v in range(official_views))
        )
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/postprocess.json"))
    parser.add_argument("--quick", action="store_true", help="small sizes, skip the slow official annealer")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--views", type=int, default=100)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--official-views", type=int, default=10, help="views for the dense official loop")
    parser.add_argument("--skip-qubo", action="store_true")
    parser.add_argument("--skip-standard", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = {
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "threads": args.threads,
    }
    if torch.cuda.is_available():
        report["cuda_device"] = torch.cuda.get_device_name()
    if not args.skip_qubo:
        official_seeds = 0 if args.quick else 3
        report["qubo"] = [
            bench_qubo(args.queries, list(range(5)), official_seeds, matrix_seed) for matrix_seed in (0, 7)
        ]
        for q in report["qubo"]:
            print(
                f"QUBO {q['num_queries']} queries, matrix seed {q['matrix_seed']} ({q['matrix_seconds']:.2f} s)"
            )
            print(f"  {'solver':<36}{'energy':>14}{'seconds':>10}")
            for name, rows in (("official", q["official"]), ("ours", q["ours"])):
                for row in rows:
                    label = f"{name} {row['restarts']}x10000, seed {row['seed']}"
                    print(f"  {label:<36}{row['energy']:>14.8f}{row['seconds']:>10.2f}")
    if not args.skip_standard:
        views = 4 if args.quick else args.views
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        report["standard_v2"] = [
            bench_standard(views, args.queries, 384, 512, device, 0 if args.quick else args.official_views)
            for device in devices
        ]
        for row in report["standard_v2"]:
            print(
                f"standard_v2 {row['num_views']} views x {row['num_queries']} queries at 384x512 on "
                f"{row['device']}: {row['ours_seconds']:.2f} s ({row['candidates']} candidates, "
                f"{row['segments']} segments)"
            )
            if "official_dense_seconds" in row:
                print(
                    f"  at {row['official_views']} views: ours {row['ours_seconds_at_official_views']:.2f} s, "
                    f"official dense loop {row['official_dense_seconds']:.2f} s, "
                    f"identical maps: {row['same_maps_as_official']}"
                )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
