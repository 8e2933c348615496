"""Batching of `StoreViewDataset` items (lists of per-view dicts) into the loop's batch mapping."""

from __future__ import annotations

from typing import Any

import torch

from panst3r_core.losses.sample_objects import BatchObjects, SampleObjects
from panst3r_core.losses.targets import find_class_set_objects

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
    duplicate (B, N) bool, memory_num_views (B,), per-sample lists class_set, dataset, scene_id, and objects
    (each sample's objects, found here in the loader's worker so that the training step need not).

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
        raise ValueError(
            f"collate_views: samples of one batch have different view counts {sorted(views_per_sample)}"
        )
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
    batch["objects"] = BatchObjects.pack([_sample_objects(batch, b) for b in range(layout[0])])
    return batch


def _sample_objects(batch: dict[str, Any], b: int) -> SampleObjects:
    # The scene named in an error is the one whose preprocessing to check.
    try:
        return find_class_set_objects(batch["pan_inst_id"][b], batch["pan_cls_id"][b], batch["class_set"][b])
    except ValueError as error:
        raise ValueError(f"sample of {batch['dataset'][b]} scene {batch['scene_id'][b]}: {error}") from error
