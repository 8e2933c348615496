import torch

from panst3r_core.losses.point_sampling import random_points, sample_binary_masks, sample_points


def _ramp(height: int, width: int) -> torch.Tensor:
    # Value at each pixel centre = its normalised x coordinate (align_corners=False convention).
    xs = (torch.arange(width, dtype=torch.float64) + 0.5) / width
    return xs.expand(height, width).clone()


def test_half_and_full_resolution_sample_the_same_locations():
    torch.manual_seed(0)
    points = 0.25 + 0.5 * random_points(3, 100).double()  # interior, away from border clamping
    full = _ramp(16, 24).expand(3, 1, 16, 24)
    half = _ramp(8, 12).expand(3, 1, 8, 12)
    sampled_full = sample_points(full, points)
    sampled_half = sample_points(half, points)
    assert sampled_full.shape == (3, 1, 100)
    # A bilinear interpolant reproduces a linear function exactly: both equal the point's x.
    torch.testing.assert_close(sampled_full[:, 0], points[..., 0])
    torch.testing.assert_close(sampled_half[:, 0], points[..., 0])


def test_points_are_shared_across_maps_of_a_row_and_binary_masks_sample_to_unit_range():
    torch.manual_seed(1)
    points = random_points(2, 50)
    assert points.min() >= 0 and points.max() <= 1
    masks = torch.zeros(2, 20, 8, 8, dtype=torch.bool)
    masks[:, 1] = True  # constant maps sample exactly
    masks[:, 2, :, :4] = True
    values = sample_binary_masks(masks, points, chunk_size=3)
    assert values.shape == (2, 20, 50)
    # Constant maps sample to their constant everywhere, borders included (edge clamping).
    torch.testing.assert_close(values[:, 1], torch.ones(2, 50))
    assert torch.all(values[:, 0] == 0)
    assert values.min() >= 0 and values.max() <= 1
    left = points[..., 0] < 0.4
    torch.testing.assert_close(values[:, 2][left], torch.ones(int(left.sum())))
