"""MUSt3R's pointmap loss on hand-made cases: perfect, scaled, shifted and partly invalid predictions."""

from __future__ import annotations

import math

import pytest
import torch

from panst3r_core.losses.pointmap import (
    TOTAL_POINTMAP_LOSS,
    PointmapCriterion,
    PointmapLossConfig,
    backproject_depth,
    pointmap_targets,
)


def _raw_from_points(global_points, local_points, conf_logit=0.0):
    """The head output whose activation is exactly these points (inverse of norm_exp) and 1 + exp(c)."""

    def inverse(points):
        norm = points.norm(dim=-1, keepdim=True)
        return points / norm.clamp(min=1e-12) * torch.log1p(norm)

    conf = torch.full(global_points.shape[:-1] + (1,), conf_logit, dtype=torch.float64)
    return torch.cat((inverse(global_points), inverse(local_points), conf), dim=-1)


def _pose(angle, translation):
    c, s = math.cos(angle), math.sin(angle)
    pose = torch.eye(4, dtype=torch.float64)
    pose[:3, :3] = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    pose[:3, 3] = torch.tensor(translation)
    return pose


@pytest.fixture
def scene():
    """One sample of 3 views of 6x8 pixels with depth 1-3 m and distinct poses."""
    torch.manual_seed(0)
    depth = 1 + 2 * torch.rand(1, 3, 6, 8, dtype=torch.float64)
    intrinsics = torch.tensor([[10.0, 0, 3.5], [0, 11.0, 2.5], [0, 0, 1]], dtype=torch.float64)
    intrinsics = intrinsics.expand(1, 3, 3, 3).clone()
    poses = torch.stack([_pose(0.0, [0, 0, 0]), _pose(0.3, [1, 0.2, 0]), _pose(-0.2, [-0.5, 0, 0.4])])
    return depth, intrinsics, poses[None]


def test_backproject_inverts_the_pinhole_projection_of_pixel_centres():
    depth = torch.full((4, 5), 2.0, dtype=torch.float64)
    K = torch.tensor([[4.0, 0, 2], [0, 5.0, 1.5], [0, 0, 1]], dtype=torch.float64)
    points = backproject_depth(depth, K)
    projected = (K @ points[..., None])[..., 0]
    pixels = projected[..., :2] / projected[..., 2:]
    v, u = torch.meshgrid(torch.arange(4.0), torch.arange(5.0), indexing="ij")
    torch.testing.assert_close(pixels, torch.stack((u, v), -1).double() + 0.5)  # COLMAP convention
    assert torch.all(points[..., 2] == 2.0)


def test_global_points_are_in_the_first_view_frame(scene):
    depth, K, poses = scene
    targets = pointmap_targets(depth, K, poses)
    torch.testing.assert_close(targets.global_points[:, 0], targets.local_points[:, 0])
    # view 1's points through its own pose and back through view 0's pose
    local = targets.local_points[0, 1].double()
    world = (poses[0, 1, :3, :3] @ local[..., None])[..., 0] + poses[0, 1, :3, 3]
    in_first = (poses[0, 0, :3, :3].T @ (world - poses[0, 0, :3, 3])[..., None])[..., 0]
    torch.testing.assert_close(targets.global_points[0, 1], in_first.float(), rtol=1e-5, atol=1e-5)


def test_perfect_prediction_has_zero_regression_error(scene):
    targets = pointmap_targets(*scene)
    raw = _raw_from_points(targets.global_points.double(), targets.local_points.double())
    losses = PointmapCriterion()(raw, targets, view_index=[0, 1, 2])
    assert losses["regr_global"].item() < 1e-5
    assert losses["regr_local"].item() < 1e-5
    # conf = 2 everywhere: the total is -2 * alpha * log 2 (global + local)
    assert losses[TOTAL_POINTMAP_LOSS].item() == pytest.approx(-2 * 0.2 * math.log(2), abs=1e-4)


def test_a_scaled_prediction_costs_nothing(scene):
    """Scale-invariant: one factor over the sample, local maps share the global factor."""
    targets = pointmap_targets(*scene)
    raw = _raw_from_points(3.7 * targets.global_points.double(), 3.7 * targets.local_points.double())
    losses = PointmapCriterion()(raw, targets, view_index=[0, 1, 2])
    assert losses["regr_global"].item() < 1e-5
    assert losses["regr_local"].item() < 1e-5


def test_local_maps_at_another_scale_than_global_ones_are_penalised(scene):
    targets = pointmap_targets(*scene)
    raw = _raw_from_points(targets.global_points.double(), 2.0 * targets.local_points.double())
    losses = PointmapCriterion()(raw, targets, view_index=[0, 1, 2])
    assert losses["regr_global"].item() < 1e-5
    assert losses["regr_local"].item() > 0.5


def test_loss_value_of_a_known_offset(scene):
    """Every predicted normalised global point is off by exactly d along x (prediction rescaled so that its
    own normalisation returns it unchanged): conf * d - alpha log conf per pixel."""
    depth, K, poses = scene
    depth = torch.full_like(depth, 2.0)
    targets = pointmap_targets(depth, K, poses)
    valid = targets.valid
    scale = targets.global_points.norm(dim=-1)[valid].mean()
    gt = targets.global_points.double() / scale
    shifted = gt + torch.tensor([0.1, 0, 0], dtype=torch.float64)
    shifted = shifted / shifted.norm(dim=-1).mean()  # so that the loss's own normalisation is a no-op
    local = targets.local_points.double() / scale
    raw = _raw_from_points(shifted, local, conf_logit=math.log(3.0))  # conf = 4
    losses = PointmapCriterion(PointmapLossConfig(alpha=0.5))(raw, targets, view_index=[0, 1, 2])
    expected = (shifted - gt).norm(dim=-1).mean().item()
    assert losses["regr_global"].item() == pytest.approx(expected, rel=1e-4)
    assert losses["conf_global"].item() == pytest.approx(4 * expected - 0.5 * math.log(4), rel=1e-4)


def test_invalid_pixels_do_not_count(scene):
    depth, K, poses = scene
    targets = pointmap_targets(depth, K, poses)
    raw = _raw_from_points(targets.global_points.double(), targets.local_points.double())
    reference = PointmapCriterion()(raw, targets, view_index=[0, 1, 2])

    holes = depth.clone()
    holes[0, 1, :2] = 0.0
    holes[0, 2, 3, 4] = float("nan")
    holes_targets = pointmap_targets(holes, K, poses)
    assert holes_targets.valid.sum() == targets.valid.sum() - 2 * 8 - 1
    garbage = raw.clone()
    garbage[0, 1, :2, :, :6] = 50.0
    garbage[0, 2, 3, 4, :6] = -30.0
    losses = PointmapCriterion()(garbage, holes_targets, view_index=[0, 1, 2])
    assert losses["regr_global"].item() < 1e-4
    assert losses[TOTAL_POINTMAP_LOSS].item() == pytest.approx(
        reference[TOTAL_POINTMAP_LOSS].item(), abs=1e-4
    )


def test_duplicated_views_are_supervised_again(scene):
    """Memory-pass and render-pass outputs of the same view: view_index repeats it."""
    targets = pointmap_targets(*scene)
    raw = _raw_from_points(targets.global_points.double(), targets.local_points.double())
    both = torch.cat((raw[:, :2], raw), dim=1)
    losses = PointmapCriterion()(both, targets, view_index=[0, 1, 0, 1, 2])
    assert losses["regr_global"].item() < 1e-5


def test_a_sample_without_valid_pixels_gives_a_finite_loss_with_a_graph(scene):
    depth, K, poses = scene
    targets = pointmap_targets(torch.zeros_like(depth), K, poses)
    raw = torch.randn(1, 3, 6, 8, 7, requires_grad=True)
    losses = PointmapCriterion()(raw, targets, view_index=[0, 1, 2])
    assert losses[TOTAL_POINTMAP_LOSS].item() == 0.0
    losses[TOTAL_POINTMAP_LOSS].backward()
    assert raw.grad is not None


def test_loss_in_log_still_zero_for_a_perfect_prediction(scene):
    targets = pointmap_targets(*scene)
    raw = _raw_from_points(targets.global_points.double(), targets.local_points.double())
    losses = PointmapCriterion(PointmapLossConfig(loss_in_log=True))(raw, targets, view_index=[0, 1, 2])
    assert losses["regr_global"].item() < 1e-5


def test_alpha_must_be_positive():
    with pytest.raises(ValueError, match="pointmap.alpha"):
        PointmapLossConfig(alpha=0)
