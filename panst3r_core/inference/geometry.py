"""Pointmap activation, focal estimation and camera registration, as the official demo computes them."""

from __future__ import annotations

import roma
import torch


def norm_exp(xyz: torch.Tensor) -> torch.Tensor:
    """NORM_EXP activation: xyz / max(|xyz|, 1e-8) * expm1(|xyz|)."""
    d = xyz.norm(dim=-1, keepdim=True)
    return xyz / d.clip(min=1e-8) * torch.expm1(d)


def activate_pointmaps(raw: torch.Tensor) -> dict[str, torch.Tensor]:
    """raw (..., H, W, 7) head output -> pts3d (..., H, W, 3) world (first keyframe camera), pts3d_local
    (..., H, W, 3) own camera, conf (..., H, W) = 1 + exp(c)."""
    raw = raw.float()
    return {
        "pts3d": norm_exp(raw[..., 0:3]),
        "pts3d_local": norm_exp(raw[..., 3:6]),
        "conf": 1 + torch.exp(raw[..., 6]),
    }


def estimate_focal_weiszfeld(pts3d_local: torch.Tensor, iterations: int = 10) -> torch.Tensor:
    """Focal (pixels) knowing depth, principal point at the image centre (W/2, H/2), robust Weiszfeld
    iterations (dust3r `estimate_focal_knowing_depth(..., focal_mode='weiszfeld')`).

    pts3d_local (B, H, W, 3) -> (B,)."""
    B, H, W, _ = pts3d_local.shape
    device = pts3d_local.device
    ys, xs = torch.meshgrid(torch.arange(H, device=device), torch.arange(W, device=device), indexing="ij")
    pp = torch.tensor([W / 2, H / 2], device=device, dtype=torch.float32)
    pixels = (torch.stack((xs, ys), dim=-1).view(1, -1, 2) - pp).to(pts3d_local.dtype)
    pts = pts3d_local.flatten(1, 2)
    xy_over_z = (pts[..., :2] / pts[..., 2:3]).nan_to_num(posinf=0, neginf=0)
    dot_xy_px = (xy_over_z * pixels).sum(dim=-1)
    dot_xy_xy = xy_over_z.square().sum(dim=-1)
    focal = dot_xy_px.mean(dim=1) / dot_xy_xy.mean(dim=1)
    for _ in range(iterations):
        dist = (pixels - focal.view(-1, 1, 1) * xy_over_z).norm(dim=-1)
        weight = dist.clip(min=1e-8).reciprocal()
        focal = (weight * dot_xy_px).mean(dim=1) / (weight * dot_xy_xy).mean(dim=1)
    return focal


def camera_to_world(pts3d_local: torch.Tensor, pts3d: torch.Tensor, conf: torch.Tensor) -> torch.Tensor:
    """Weighted rigid registration (no scale) of the camera-frame points onto the world points, weights conf-1.

    pts3d_local/pts3d (B, H, W, 3), conf (B, H, W) -> cam-to-world (B, 4, 4)."""
    B = pts3d.shape[0]
    rotation, translation = roma.rigid_points_registration(
        pts3d_local.reshape(B, -1, 3),
        pts3d.reshape(B, -1, 3),
        weights=(conf - 1).reshape(B, -1),
        compute_scaling=False,
    )
    c2w = torch.eye(4, device=pts3d.device, dtype=rotation.dtype).repeat(B, 1, 1)
    c2w[:, :3, :3] = rotation
    c2w[:, :3, 3] = translation
    return c2w
