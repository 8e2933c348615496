from __future__ import annotations

import math

import torch

from panst3r_core.inference.geometry import activate_pointmaps, camera_to_world, estimate_focal_weiszfeld


def _pinhole_points(focal: float, H: int = 48, W: int = 64) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing="ij")
    depth = 2.0 + 0.01 * xs
    x = (xs - W / 2) / focal * depth
    y = (ys - H / 2) / focal * depth
    return torch.stack((x, y, depth), dim=-1)


def test_focal_of_an_exact_pinhole_pointmap():
    pts = torch.stack([_pinhole_points(70.0), _pinhole_points(120.0)])
    assert torch.allclose(estimate_focal_weiszfeld(pts), torch.tensor([70.0, 120.0]), rtol=1e-4)


def test_camera_to_world_recovers_a_rigid_motion_and_ignores_zero_weight_points():
    local = _pinhole_points(80.0)[None]
    angle = 0.3
    rotation = torch.tensor(
        [[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]]
    )
    translation = torch.tensor([0.5, -0.2, 1.0])
    world = local @ rotation.T + translation
    conf = torch.full(local.shape[:-1], 3.0)
    world[0, :5] += 100.0  # outliers with confidence 1 -> weight 0
    conf[0, :5] = 1.0
    c2w = camera_to_world(local, world, conf)[0]
    assert torch.allclose(c2w[:3, :3], rotation, atol=1e-4)
    assert torch.allclose(c2w[:3, 3], translation, atol=1e-4)
    assert torch.equal(c2w[3], torch.tensor([0.0, 0, 0, 1]))


def test_norm_exp_and_confidence_activation():
    raw = torch.zeros(1, 1, 7)
    raw[0, 0, :3] = torch.tensor([0.0, 0.0, 2.0])
    raw[0, 0, 6] = 0.5
    out = activate_pointmaps(raw)
    assert torch.allclose(out["pts3d"][0, 0], torch.tensor([0.0, 0.0, math.expm1(2.0)]))
    assert torch.equal(out["pts3d_local"][0, 0], torch.zeros(3))
    assert torch.allclose(out["conf"][0, 0], torch.tensor(1 + math.exp(0.5)))
