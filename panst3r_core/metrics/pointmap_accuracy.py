"""Accuracy of predicted pointmaps against depth and poses: what the 3-D pretraining stage is judged by.

Both maps are compared up to one scale per scene (MUSt3R's normalisation: mean distance of the valid global
points to the first view's camera centre), so a scale-free reconstruction can score perfectly:
- relative error of a pixel = |pred - gt| / |gt| of the normalised points, global (first view's frame) and
  local (own camera frame), as medians over the valid pixels of all views;
- focal length estimated from the local pointmap as at inference (principal point at the image centre,
  Weiszfeld iterations) against the true fx, per view.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from panst3r_core.inference.geometry import activate_pointmaps, estimate_focal_weiszfeld
from panst3r_core.losses.pointmap import MIN_SCALE, PointmapTargets

FOCAL_TOLERANCE = 0.05
"""A focal estimate within this relative error of the truth counts as right."""


@dataclass
class PointmapAccuracy:
    """Accuracy of one scene's views."""

    median_rel_error_global: float
    median_rel_error_local: float
    focal_rel_errors: list[float]
    """Per view |f_estimated - fx| / fx."""
    valid_pixels: int
    focal_estimates: list[float]
    """Per view estimated focal length (pixels)."""
    true_focals: list[float]
    """Per view fx (pixels)."""

    @property
    def focal_within_tolerance(self) -> float:
        """Share of views whose focal estimate is within FOCAL_TOLERANCE."""
        errors = self.focal_rel_errors
        return sum(error <= FOCAL_TOLERANCE for error in errors) / max(len(errors), 1)


def _normalised(points: torch.Tensor, valid: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    scale = reference.norm(dim=-1)[valid].mean().clamp(min=MIN_SCALE)
    return points / scale


def pointmap_accuracy(raw_pointmaps: torch.Tensor, targets: PointmapTargets, intrinsics: torch.Tensor):
    """raw_pointmaps (N, H, W, 7) of one scene's N views (render pass, view 0 = reference), targets of the
    same views with a batch dimension of 1, intrinsics (N, 3, 3) -> PointmapAccuracy."""
    pred = activate_pointmaps(raw_pointmaps)
    valid = targets.valid[0]
    gt_global, gt_local = targets.global_points[0], targets.local_points[0]
    pred_global = _normalised(pred["pts3d"], valid, pred["pts3d"])
    pred_local = _normalised(pred["pts3d_local"], valid, pred["pts3d"])
    true_global = _normalised(gt_global, valid, gt_global)
    true_local = _normalised(gt_local, valid, gt_global)

    def median_relative(prediction: torch.Tensor, truth: torch.Tensor) -> float:
        error = (prediction - truth).norm(dim=-1)[valid] / truth.norm(dim=-1)[valid].clamp(min=MIN_SCALE)
        return float(error.median()) if error.numel() else float("nan")

    focal = estimate_focal_weiszfeld(pred["pts3d_local"])
    true_focal = intrinsics[:, 0, 0].to(focal)
    return PointmapAccuracy(
        median_rel_error_global=median_relative(pred_global, true_global),
        median_rel_error_local=median_relative(pred_local, true_local),
        focal_rel_errors=((focal - true_focal).abs() / true_focal).tolist(),
        valid_pixels=int(valid.sum()),
        focal_estimates=focal.tolist(),
        true_focals=true_focal.tolist(),
    )
