"""MUSt3R's 3-D pretraining loss: confidence-weighted distances between normalised pointmaps.

For one sample of N views (depth in metres, pinhole K in the store's COLMAP pixel convention, camera-to-world
in OpenCV axes):
- ground truth `global` points are every view's pixels expressed in the first view's camera frame, `local`
  points each view's pixels in its own frame; valid pixels have a finite, positive depth;
- one scale per sample: the ground truth is divided by the mean distance of its valid global points to the
  origin (over all supervised views), the prediction by the same mean over its own global points at the ground truth's
  valid pixels; local maps share their sample's global factor, so both maps keep one scale (the pose
  estimate at inference relies on it);
- per valid pixel, `conf * ||pred - gt|| - alpha * log(conf)` with conf = 1 + exp(c), averaged over the valid
  pixels of the batch for the global and the local term, which are summed (weights 1:1).

The predictions may hold more views than the ground truth (MUSt3R supervises the memory pass and the render
pass together): `view_index` says which ground-truth view each predicted view is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from panst3r_core.inference.geometry import activate_pointmaps

TOTAL_POINTMAP_LOSS = "pointmap_loss"
MIN_SCALE = 1e-8


@dataclass
class PointmapLossConfig:
    """MUSt3R's `ConfLoss(Regr3D(L21, norm_mode='avg_dis'), alpha)` settings."""

    alpha: float = 0.2
    """Weight of the `-log(conf)` term (every MUSt3R / DUSt3R recipe uses 0.2)."""
    loss_in_log: bool = False
    """Compare `dir * log1p(|p|)` instead of the points themselves (MUSt3R's README recipe; undoes the
    head's exp activation, which tames far points)."""
    memory_pass: bool = True
    """Also supervise the memory-pass pointmaps of the memory views (as MUSt3R trains), not only the render
    pass of every view."""
    weight: float = 1.0
    """Weight of this loss beside the panoptic one (objective `panoptic_pointmap`; unused otherwise)."""

    def __post_init__(self) -> None:
        if self.alpha <= 0:
            raise ValueError(f"pointmap.alpha: must be > 0, got {self.alpha}")
        if self.weight < 0:
            raise ValueError(f"pointmap.weight: must be >= 0, got {self.weight}")


@dataclass
class PointmapTargets:
    """Metric ground truth of a batch: global (first view's frame) and local points (B, N, H, W, 3), valid
    pixels (B, N, H, W)."""

    global_points: torch.Tensor
    local_points: torch.Tensor
    valid: torch.Tensor


def backproject_depth(depth: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """depth (..., H, W) z-depth, intrinsics (..., 3, 3) pinhole without skew in the store's COLMAP
    convention (the image spans [0, W] x [0, H], pixel centres at +0.5; what the renderer used) ->
    camera-frame points (..., H, W, 3), OpenCV axes."""
    H, W = depth.shape[-2:]
    v, u = torch.meshgrid(
        torch.arange(H, device=depth.device, dtype=depth.dtype) + 0.5,
        torch.arange(W, device=depth.device, dtype=depth.dtype) + 0.5,
        indexing="ij",
    )
    fx = intrinsics[..., 0, 0, None, None]
    fy = intrinsics[..., 1, 1, None, None]
    cx = intrinsics[..., 0, 2, None, None]
    cy = intrinsics[..., 1, 2, None, None]
    return torch.stack(((u - cx) * depth / fx, (v - cy) * depth / fy, depth), dim=-1)


def transform_points(transform: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """transform (..., 4, 4) applied to points (..., H, W, 3)."""
    rotation = transform[..., None, None, :3, :3]
    translation = transform[..., None, None, :3, 3]
    return (rotation @ points[..., None])[..., 0] + translation


def per_sample_mean(values: torch.Tensor, sample: torch.Tensor, batch: int) -> torch.Tensor:
    """Mean of `values` (K,) per sample number `sample` (K,) -> (batch,), at least MIN_SCALE (a sample
    without any valid pixel must not divide by zero)."""
    sums = torch.zeros(batch, device=values.device, dtype=values.dtype).index_add(0, sample, values)
    counts = torch.bincount(sample, minlength=batch).clamp(min=1)
    return (sums / counts).clamp(min=MIN_SCALE)


def pointmap_targets(
    depth: torch.Tensor, intrinsics: torch.Tensor, cam_to_world: torch.Tensor
) -> PointmapTargets:
    """depth (B, N, H, W) metres (<= 0 or non-finite = invalid), intrinsics (B, N, 3, 3), cam_to_world
    (B, N, 4, 4) -> the ground truth points."""
    depth = depth.float()
    valid = torch.isfinite(depth) & (depth > 0)
    local = backproject_depth(torch.where(valid, depth, torch.zeros_like(depth)), intrinsics.float())
    to_first = torch.linalg.inv(cam_to_world[:, :1].double()) @ cam_to_world.double()
    global_points = transform_points(to_first.float(), local)
    valid = valid & torch.isfinite(global_points).all(dim=-1) & torch.isfinite(local).all(dim=-1)
    return PointmapTargets(global_points, local, valid)


def _log_distance(points: torch.Tensor) -> torch.Tensor:
    norm = points.norm(dim=-1, keepdim=True)
    return points / norm.clamp(min=MIN_SCALE) * torch.log1p(norm)


class PointmapCriterion(torch.nn.Module):
    """MUSt3R's training loss over raw head outputs (the decoder's 7 channels)."""

    def __init__(self, config: PointmapLossConfig | None = None) -> None:
        super().__init__()
        self.config = config or PointmapLossConfig()

    def forward(
        self, raw_pointmaps: torch.Tensor, targets: PointmapTargets, view_index: Sequence[int]
    ) -> dict[str, torch.Tensor]:
        """raw_pointmaps (B, M, H, W, 7); view_index: M ground-truth view numbers. Returns the total
        (`pointmap_loss`), the confidence-weighted terms and the plain mean distances `regr_global` /
        `regr_local` (the numbers to watch: the total can go negative)."""
        index = torch.as_tensor(list(view_index), device=raw_pointmaps.device)
        valid = targets.valid[:, index]
        sample = valid.nonzero()[:, 0]
        batch = valid.shape[0]
        # Only valid pixels are activated: an exploding output elsewhere must not reach the loss or its
        # gradient (inf * 0 is nan).
        pred = activate_pointmaps(raw_pointmaps[valid])
        gt_global = targets.global_points[:, index][valid]
        gt_scale = per_sample_mean(gt_global.norm(dim=-1), sample, batch)[sample, None]
        pred_scale = per_sample_mean(pred["pts3d"].norm(dim=-1), sample, batch)[sample, None]
        terms = {}
        for name, prediction, truth in (
            ("global", pred["pts3d"] / pred_scale, gt_global / gt_scale),
            ("local", pred["pts3d_local"] / pred_scale, targets.local_points[:, index][valid] / gt_scale),
        ):
            if self.config.loss_in_log:
                prediction, truth = _log_distance(prediction), _log_distance(truth)
            distance = (prediction - truth).norm(dim=-1)
            conf = pred["conf"]
            terms[f"conf_{name}"] = _masked_mean(conf * distance - self.config.alpha * torch.log(conf))
            terms[f"regr_{name}"] = _masked_mean(distance.detach())
        terms[TOTAL_POINTMAP_LOSS] = terms["conf_global"] + terms["conf_local"]
        return terms


def _masked_mean(values: torch.Tensor) -> torch.Tensor:
    # No valid pixel in the whole batch: a zero that still depends on the graph (DDP needs every rank to
    # produce gradients for the same parameters).
    return values.mean() if values.numel() else values.sum()
