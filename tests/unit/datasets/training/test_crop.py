"""Crop around the principal point, aug_crop rescale, final crop: K stays consistent, ids are never mixed."""

import numpy as np
import pytest

from datasets.training.crop import crop_resize_view, resize_nearest, view_pose


def pixel_codes(height: int, width: int) -> np.ndarray:
    """Each pixel holds row * 10000 + column: a crop/resize must copy codes, and K tells which."""
    rows, cols = np.mgrid[0:height, 0:width]
    return (rows * 10000 + cols).astype(np.uint32)


def make_view(height=120, width=160, cx=None, cy=None, focal=150.0, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    depth = rng.uniform(0.5, 3.0, size=(height, width)).astype(np.float32)
    K = np.array(
        [[focal, 0, cx or width / 2], [0, focal * 1.02, cy or height / 2], [0, 0, 1]], dtype=np.float64
    )
    return image, depth, K


def expected_source_pixel(K_out, K_in, u, v):
    """Source pixel index hit by the ray through the centre of output pixel (u, v)."""
    x = (u + 0.5 - K_out[0, 2]) / K_out[0, 0]
    y = (v + 0.5 - K_out[1, 2]) / K_out[1, 1]
    return x * K_in[0, 0] + K_in[0, 2] - 0.5, y * K_in[1, 1] + K_in[1, 2] - 0.5


@pytest.mark.parametrize("cx,cy", [(80.0, 60.0), (70.3, 64.8), (95.5, 50.2)])
@pytest.mark.parametrize("resolution", [(64, 48), (64, 32), (96, 64)])
def test_principal_point_centred_and_K_consistent_with_pixels(cx, cy, resolution):
    image, depth, K = make_view(cx=cx, cy=cy)
    codes = pixel_codes(*depth.shape)
    rng = np.random.default_rng(4)
    for _ in range(5):
        view = crop_resize_view(image, depth, [codes], K, resolution, aug_crop=16, rng=rng)
        width, height = resolution
        assert view.image.shape == (height, width, 3) and view.labels[0].shape == (height, width)
        assert not view.transposed
        assert abs(view.intrinsics[0, 2] - width / 2) <= 1.0
        assert abs(view.intrinsics[1, 2] - height / 2) <= 1.0
        # Aspect of the focal lengths is kept (same scale on both axes, up to size rounding).
        assert view.intrinsics[1, 1] / view.intrinsics[0, 0] == pytest.approx(1.02, rel=0.03)
        source_rows, source_cols = np.divmod(view.labels[0].astype(np.int64), 10000)
        v, u = np.mgrid[0:height, 0:width]
        want_cols, want_rows = expected_source_pixel(view.intrinsics, K, u, v)
        assert np.abs(source_cols - want_cols).max() <= 1.0
        assert np.abs(source_rows - want_rows).max() <= 1.0


def test_ids_are_copied_never_interpolated():
    image, depth, K = make_view()
    rng = np.random.default_rng(5)
    ids = rng.choice(np.array([0, 257, 513, 70000, 1_000_003], dtype=np.uint32), size=depth.shape)
    for resolution in [(64, 48), (128, 96), (192, 144)]:  # shrinking and enlarging
        view = crop_resize_view(image, depth, [ids], K, resolution, aug_crop=8, rng=rng)
        assert set(np.unique(view.labels[0]).tolist()) <= {0, 257, 513, 70000, 1_000_003}
        assert view.labels[0].dtype == np.uint32
        assert set(np.unique(view.depth).tolist()) <= set(np.unique(depth).tolist())


def test_portrait_view_comes_back_landscape_with_K_swapped():
    image, depth, K = make_view(height=160, width=120, cx=58.0, cy=83.0)
    codes = pixel_codes(160, 120)
    view = crop_resize_view(image, depth, [codes], K, (64, 48), aug_crop=4, rng=np.random.default_rng(6))
    assert view.transposed and view.image.shape == (48, 64, 3) and view.depth.shape == (48, 64)
    # After the transpose, output (row, col) = source (col, row) direction: K's x axis is the source's y.
    source_rows, source_cols = np.divmod(view.labels[0].astype(np.int64), 10000)
    v, u = np.mgrid[0:48, 0:64]
    K_swapped = K[[1, 0, 2]][:, [1, 0, 2]]
    want_rows, want_cols = expected_source_pixel(view.intrinsics, K_swapped, u, v)
    assert np.abs(source_rows - want_rows).max() <= 1.0
    assert np.abs(source_cols - want_cols).max() <= 1.0


def _world_points(depth, K, pose, rows, cols):
    """World points of pixels (rows, cols) of a view (COLMAP pixel centres)."""
    z = depth[rows, cols]
    local = np.stack(((cols + 0.5 - K[0, 2]) * z / K[0, 0], (rows + 0.5 - K[1, 2]) * z / K[1, 1], z), -1)
    return local @ pose[:3, :3].T + pose[:3, 3]


def test_a_transposed_view_gets_the_pose_that_keeps_its_world_points():
    image, _, K = make_view(height=160, width=120, cx=58.0, cy=83.0)
    depth = np.full((160, 120), 2.0, dtype=np.float32)
    codes = pixel_codes(160, 120)
    angle = 0.4
    pose = np.eye(4)
    pose[:3, :3] = [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]
    pose[:3, 3] = [1.0, -0.5, 2.0]
    view = crop_resize_view(image, depth, [codes], K, (64, 48), aug_crop=4, rng=np.random.default_rng(6))
    assert view.transposed
    v, u = np.mgrid[0:48, 0:64]
    source_rows, source_cols = np.divmod(view.labels[0].astype(np.int64), 10000)
    seen = _world_points(view.depth, view.intrinsics, view_pose(pose, view), v, u)
    truth = _world_points(depth, K, pose, source_rows, source_cols)
    # up to the nearest-neighbour resampling: 1.5 output pixels at 2 m
    tolerance = 1.5 / view.intrinsics[0, 0] * 2.0 * 1.5
    assert np.abs(seen - truth).max() < tolerance
    unchanged = _world_points(view.depth, view.intrinsics, pose, v, u)
    assert np.abs(unchanged - truth).max() > 10 * tolerance  # the untransposed pose would be wrong


def test_a_landscape_view_keeps_its_pose():
    image, depth, K = make_view()
    view = crop_resize_view(image, depth, [], K, (64, 48), aug_crop=4, rng=np.random.default_rng(1))
    pose = np.arange(16, dtype=np.float64).reshape(4, 4)
    assert np.array_equal(view_pose(pose, view), pose)


def test_square_views_take_both_orientations():
    image, depth, K = make_view(height=100, width=100)
    orientations = {
        crop_resize_view(image, depth, [], K, (64, 48), 0, np.random.default_rng(seed)).transposed
        for seed in range(20)
    }
    assert orientations == {True, False}


def test_resize_nearest_keeps_values_and_shape():
    array = np.arange(12, dtype=np.int32).reshape(3, 4)
    bigger = resize_nearest(array, 8, 6)
    assert bigger.shape == (6, 8) and np.array_equal(bigger[::2, ::2], array)


def test_principal_point_outside_the_image_is_an_error():
    image, depth, K = make_view(cx=-5.0)
    with pytest.raises(ValueError, match="principal point"):
        crop_resize_view(image, depth, [], K, (64, 48), 0, np.random.default_rng(0))
