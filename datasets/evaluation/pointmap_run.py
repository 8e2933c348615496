"""Evaluate the 3-D reconstruction of a model on store scenes: the measure of the 3-D pretraining stage.

Each scene's views (all, or `max_views` spread over the frame order) are cropped to the training resolution
exactly as training views are (centred on the principal point, no random zoom, no colour jitter), the MUSt3R
memory is built over all of them and every view is rendered; the pointmaps are scored against the store's
depth, intrinsics and poses (`panst3r_core.metrics.pointmap_accuracy`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from datasets.evaluation.scene_run import view_indices
from datasets.store.reader import StoreReader
from datasets.training.crop import crop_resize_view, view_pose
from panst3r_core.losses.pointmap import pointmap_targets
from panst3r_core.metrics.pointmap_accuracy import FOCAL_TOLERANCE, PointmapAccuracy, pointmap_accuracy
from panst3r_core.model.panst3r import PanSt3R


@dataclass(frozen=True)
class PointmapEvalSettings:
    resolution: tuple[int, int] = (256, 192)
    """(W, H) network input, landscape (the training resolution)."""
    max_views: int | None = 16
    """Views per scene, evenly spread over the frame order; None = all."""
    amp: torch.dtype | None = None
    """Autocast dtype of the MUSt3R forward (the head and the scores stay in fp32)."""


def scene_views(
    reader: StoreReader, scene_id: str, settings: PointmapEvalSettings
) -> dict[str, torch.Tensor]:
    """images (1, N, 3, H, W) in [-1, 1], depth (1, N, H, W) metres, intrinsics (1, N, 3, 3),
    cam_to_world (1, N, 4, 4) of a scene's evaluated views."""
    rng = np.random.default_rng(0)  # only square views draw (their orientation)
    images, depths, intrinsics, poses = [], [], [], []
    for index in view_indices(reader.num_frames(scene_id), settings.max_views):
        frame = reader.read_frame(scene_id, index)
        view = crop_resize_view(
            frame["image"], frame["depth_mm"], [], frame["intrinsics"], settings.resolution, 0, rng
        )
        # a writable copy: a frame read from the store can be a read-only view
        images.append(torch.from_numpy(np.array(view.image)).permute(2, 0, 1).float() / 127.5 - 1)
        depths.append(torch.from_numpy(view.depth.astype(np.float32) / 1000.0))
        intrinsics.append(torch.from_numpy(view.intrinsics.astype(np.float32)))
        poses.append(torch.from_numpy(view_pose(frame["cam_to_world"], view).astype(np.float32)))
    return {
        "images": torch.stack(images)[None],
        "depth": torch.stack(depths)[None],
        "intrinsics": torch.stack(intrinsics)[None],
        "cam_to_world": torch.stack(poses)[None],
    }


@torch.no_grad()
def evaluate_scene_pointmaps(
    model: PanSt3R, reader: StoreReader, scene_id: str, settings: PointmapEvalSettings
) -> PointmapAccuracy:
    device = next(model.parameters()).device
    views = {key: value.to(device) for key, value in scene_views(reader, scene_id, settings).items()}
    with torch.autocast(device.type, dtype=settings.amp, enabled=settings.amp is not None):
        raw = model.reconstruct(views["images"])["pointmaps"]
    targets = pointmap_targets(views["depth"], views["intrinsics"], views["cam_to_world"])
    return pointmap_accuracy(raw[0].float(), targets, views["intrinsics"][0])


def focal_agreement(estimates: list[float], truths: list[float]) -> dict:
    """Whether focal lengths are read from the images or guessed: the median ratio estimate / truth - 1 (a
    model that learnt one focal for every scene shows the bias of its training crops) and the correlation of
    estimates with truths over the views (near 0 for such a model, 1 for one that measures the focal)."""
    estimate, truth = np.asarray(estimates, dtype=np.float64), np.asarray(truths, dtype=np.float64)
    if estimate.size == 0:
        return {"focal_bias": float("nan"), "focal_correlation": float("nan")}
    # undefined (rather than a numpy warning) when either side is constant, e.g. one focal for every view
    spread = estimate.std() * truth.std()
    correlation = float(np.corrcoef(estimate, truth)[0, 1]) if spread > 0 else float("nan")
    return {"focal_bias": float(np.median(estimate / truth) - 1), "focal_correlation": correlation}


def evaluate_pointmaps(
    model: PanSt3R, reader: StoreReader, scene_ids: list[str], settings: PointmapEvalSettings
) -> dict:
    """Per-scene accuracy and the summary over scenes: mean of the per-scene median relative errors, median
    focal error over all views, the share of views within FOCAL_TOLERANCE and `focal_agreement`."""
    model.eval()
    per_scene = {scene: evaluate_scene_pointmaps(model, reader, scene, settings) for scene in scene_ids}
    focal = [error for result in per_scene.values() for error in result.focal_rel_errors]
    estimates = [value for result in per_scene.values() for value in result.focal_estimates]
    truths = [value for result in per_scene.values() for value in result.true_focals]
    return {
        "scenes": len(per_scene),
        "views": len(focal),
        "median_rel_error_global": float(np.mean([r.median_rel_error_global for r in per_scene.values()])),
        "median_rel_error_local": float(np.mean([r.median_rel_error_local for r in per_scene.values()])),
        "focal_median_rel_error": float(np.median(focal)) if focal else float("nan"),
        "focal_within_tolerance": float(np.mean([e <= FOCAL_TOLERANCE for e in focal])) if focal else 0.0,
        "focal_tolerance": FOCAL_TOLERANCE,
        **focal_agreement(estimates, truths),
        "per_scene": {
            scene: {
                "median_rel_error_global": r.median_rel_error_global,
                "median_rel_error_local": r.median_rel_error_local,
                "focal_rel_errors": r.focal_rel_errors,
                "focal_estimates": r.focal_estimates,
                "true_focals": r.true_focals,
            }
            for scene, r in per_scene.items()
        },
    }
