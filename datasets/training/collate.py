"""Batching of `StoreViewDataset` items (lists of per-view dicts) into the loop's batch mapping."""

from __future__ import annotations

from typing import Any

import torch

# Per-view tensor key -> batch key; stacked to (B, N, ...).
STACKED = {
    "img": "images",
    "true_shape": "true_shape",
    "pan_inst_id": "pan_inst_id",
    "pan_cls_id": "pan_cls_id",
    "camera_pose": "camera_pose",
    "camera_intrinsics": "camera_intrinsics",
    "depth": "depth",
}


def collate_views(samples: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """B samples of N views -> images (B, N, 3, H, W), true_shape (B, N, 2), pan_inst_id / pan_cls_id /
    depth (B, N, H, W), camera_pose (B, N, 4, 4), camera_intrinsics (B, N, 3, 3), frame_index (B, N),
    duplicate (B, N) bool, memory_num_views (B,), and per-sample lists class_set, dataset, scene_id.

    All views of a batch must share one shape (the sampler draws one resolution per batch)."""
    if not samples:
        raise ValueError("collate_views: empty batch")
    shapes = {tuple(view["img"].shape) for sample in samples for view in sample}
    if len(shapes) != 1:
        raise ValueError(
            f"collate_views: views of one batch have different shapes {sorted(shapes)}; draw one resolution "
            "per batch (BatchedViewSampler) so that they can be stacked"
        )
    views_per_sample = {len(sample) for sample in samples}
    if len(views_per_sample) != 1:
        raise ValueError(f"collate_views: samples of one batch have different view counts {sorted(views_per_sample)}")
    layout = (len(samples), views_per_sample.pop())
    # One stack of all B*N views (one copy), viewed as (B, N, ...).
    batch: dict[str, Any] = {
        out: torch.stack([view[key] for sample in samples for view in sample]).unflatten(0, layout)
        for key, out in STACKED.items()
    }
    batch["frame_index"] = torch.tensor([[view["frame_index"] for view in sample] for sample in samples])
    batch["duplicate"] = torch.tensor([[view["duplicate"] for view in sample] for sample in samples])
    batch["memory_num_views"] = torch.tensor([sample[0]["memory_num_views"] for sample in samples])
    for key in ("class_set", "dataset", "scene_id"):
        batch[key] = [sample[0][key] for sample in samples]
    return batch
