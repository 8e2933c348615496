"""Pointmap accuracy: perfect and scaled reconstructions score zero error and the right focal length."""

import math

import pytest
import torch

from panst3r_core.losses.pointmap import pointmap_targets
from panst3r_core.metrics.pointmap_accuracy import FOCAL_TOLERANCE, pointmap_accuracy


def _raw(global_points, local_points):
    def inverse(points):
        norm = points.norm(dim=-1, keepdim=True)
        return points / norm.clamp(min=1e-12) * torch.log1p(norm)

    conf = torch.zeros(global_points.shape[:-1] + (1,))
    return torch.cat((inverse(global_points), inverse(local_points), conf), dim=-1)


@pytest.fixture
def views():
    torch.manual_seed(0)
    depth = 1 + torch.rand(1, 2, 24, 32)
    K = torch.tensor([[40.0, 0, 16.0], [0, 40.0, 12.0], [0, 0, 1]]).expand(1, 2, 3, 3).clone()
    poses = torch.eye(4).repeat(1, 2, 1, 1)
    c, s = math.cos(0.3), math.sin(0.3)
    poses[0, 1, :3, :3] = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    poses[0, 1, :3, 3] = torch.tensor([0.5, 0.0, 0.1])
    return depth, K, poses


@pytest.mark.parametrize("scale", [1.0, 0.3])
def test_a_perfect_reconstruction_at_any_scale(views, scale):
    depth, K, poses = views
    targets = pointmap_targets(depth, K, poses)
    raw = _raw(scale * targets.global_points[0], scale * targets.local_points[0])
    result = pointmap_accuracy(raw, targets, K[0])
    assert result.median_rel_error_global < 1e-5
    assert result.median_rel_error_local < 1e-5
    assert max(result.focal_rel_errors) < FOCAL_TOLERANCE
    assert result.focal_within_tolerance == 1.0
    assert result.valid_pixels == 2 * 24 * 32


def test_a_wrong_focal_is_found(views):
    depth, K, poses = views
    targets = pointmap_targets(depth, K, poses)
    wide = K.clone()
    wide[..., 0, 0] *= 1.3
    wide[..., 1, 1] *= 1.3
    squeezed = pointmap_targets(depth, wide, poses)  # the scene as a 1.3x longer lens would see it
    raw = _raw(squeezed.global_points[0], squeezed.local_points[0])
    result = pointmap_accuracy(raw, targets, K[0])
    assert result.focal_within_tolerance == 0.0
    assert min(result.focal_rel_errors) == pytest.approx(0.3, abs=0.05)
    assert result.median_rel_error_local > 0.01
