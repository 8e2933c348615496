"""Benchmark of the PQ metrics on a 1-million-pixel case.

    .venv/bin/python tests/benchmarks/metrics.py [--out runs/benchmarks/metrics.json]

coco mode: 4 images of 500 x 500 (1 M pixels) with ~200 GT and ~200 predicted segments each.
scene mode: one scene of 4 views of 500 x 500, resized to 512 x 512 (1.05 M pixels), one matching.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from panst3r_core.metrics.coco_pq import PanopticImage, Segment, coco_pq
from panst3r_core.metrics.scene_pq import SceneInput, scene_pq


def blocky_ids(rng, shape, cells, max_id):
    """Piecewise-constant id map: a coarse random grid upsampled (segments of realistic size)."""
    coarse = rng.integers(0, max_id, size=cells)
    rows = np.arange(shape[0]) * cells[0] // shape[0]
    cols = np.arange(shape[1]) * cells[1] // shape[1]
    return coarse[rows[:, None], cols[None, :]]


def make_images(seed, views=4, shape=(500, 500)):
    rng = np.random.default_rng(seed)
    pairs, scene = [], SceneInput([], [], [], [], name="bench")
    categories = {c: c <= 10 for c in range(1, 21)}
    for _ in range(views):
        gt = blocky_ids(rng, shape, (20, 20), 200)
        noise = blocky_ids(rng, shape, (25, 25), 8) == 0  # ~1/8 of the area re-labelled
        pred = np.where(noise, blocky_ids(rng, shape, (25, 25), 200) + 200, gt)
        gt_category = {i: int(1 + i % 20) for i in np.unique(gt)}
        pred_category = {i: int(1 + i % 20) for i in np.unique(pred)}
        gt_segments = [
            Segment(int(i), c, False, int((gt == i).sum())) for i, c in gt_category.items() if i != 0
        ]
        pred_segments = [Segment(int(i), c) for i, c in pred_category.items() if i != 0]
        pairs.append((PanopticImage(gt, gt_segments), PanopticImage(pred, pred_segments)))
        scene.gt_class.append(np.where(gt != 0, 1 + gt % 20, 0))
        scene.gt_instance.append(gt)
        scene.pred_class.append(np.where(pred != 0, 1 + pred % 20, 0))
        scene.pred_instance.append(pred)
    return pairs, scene, categories


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/metrics.json"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    pairs, scene, categories = make_images(0)
    pixels = sum(gt.ids.size for gt, _ in pairs)
    things = {c for c, t in categories.items() if t}
    stuff = {c for c, t in categories.items() if not t}
    report = {"pixels": pixels, "coco_seconds": [], "scene_seconds": []}
    for _ in range(args.repeats):
        start = time.perf_counter()
        coco = coco_pq(pairs, categories)
        report["coco_seconds"].append(time.perf_counter() - start)
        start = time.perf_counter()
        scene_result = scene_pq([scene], things, stuff)
        report["scene_seconds"].append(time.perf_counter() - start)
    report["coco_pq"] = coco.all.pq
    report["scene_pq"] = scene_result.all.pq
    print(f"{'mode':<8}{'pixels':>12}{'best s':>10}{'PQ':>8}")
    print(f"{'coco':<8}{pixels:>12}{min(report['coco_seconds']):>10.3f}{100 * coco.all.pq:>8.1f}")
    print(
        f"{'scene':<8}{4 * 512 * 512:>12}{min(report['scene_seconds']):>10.3f}{100 * scene_result.all.pq:>8.1f}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
