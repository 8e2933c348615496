"""Undistortion against the analytic camera models: a pixel of the undistorted image must sample the distorted
image exactly where the fisheye / OPENCV model projects the 3-D ray of that pixel."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from datasets.preprocess.errors import BadSceneInput
from datasets.preprocess.undistort import (
    undistort_image,
    undistort_mask,
    undistortion_maps,
)
from datasets.scannetpp.record import CameraModel

FISHEYE = CameraModel("OPENCV_FISHEYE", 400, 300, (180.0, 182.0, 201.3, 149.1, -0.03, 0.012, -0.004, 0.001))
OPENCV = CameraModel("OPENCV", 400, 300, (330.0, 331.0, 199.0, 151.7, 0.08, -0.05, 0.0015, -0.001))


def fisheye_project(rays: np.ndarray, camera: CameraModel) -> np.ndarray:
    """(N, 3) camera-frame points -> (N, 2) distorted pixels, COLMAP convention (equidistant fisheye)."""
    x, y = rays[:, 0] / rays[:, 2], rays[:, 1] / rays[:, 2]
    r = np.hypot(x, y)
    theta = np.arctan(r)
    k1, k2, k3, k4 = camera.distortion
    theta_d = theta * (1 + k1 * theta**2 + k2 * theta**4 + k3 * theta**6 + k4 * theta**8)
    ratio = np.where(r > 1e-12, theta_d / np.maximum(r, 1e-12), 1.0)
    return np.stack([camera.fx * x * ratio + camera.cx, camera.fy * y * ratio + camera.cy], axis=1)


def opencv_project(rays: np.ndarray, camera: CameraModel) -> np.ndarray:
    """(N, 3) camera-frame points -> (N, 2) distorted pixels, COLMAP convention (radial-tangential)."""
    x, y = rays[:, 0] / rays[:, 2], rays[:, 1] / rays[:, 2]
    k1, k2, p1, p2 = camera.distortion
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 * r2
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([camera.fx * xd + camera.cx, camera.fy * yd + camera.cy], axis=1)


def pixel_rays(K: np.ndarray, width: int, height: int, step: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Integer pixel indices (N, 2) of a sparse grid and the rays through their centres for a COLMAP K."""
    ii, jj = np.meshgrid(np.arange(0, width, step), np.arange(0, height, step))
    pix = np.stack([ii.ravel(), jj.ravel()], axis=1)
    centres = pix + 0.5  # COLMAP: the centre of pixel (i, j) is (i + 0.5, j + 0.5)
    rays = np.stack(
        [(centres[:, 0] - K[0, 2]) / K[0, 0], (centres[:, 1] - K[1, 2]) / K[1, 1], np.ones(len(pix))], axis=1
    )
    return pix, rays


@pytest.mark.parametrize(("camera", "project"), [(FISHEYE, fisheye_project), (OPENCV, opencv_project)])
def test_maps_sample_where_the_model_projects(camera, project):
    maps = undistortion_maps(camera)
    pix, rays = pixel_rays(maps.intrinsics, camera.width, camera.height)
    expected_colmap = project(rays, camera)
    sampled = np.stack([maps.map_x[pix[:, 1], pix[:, 0]], maps.map_y[pix[:, 1], pix[:, 0]]], axis=1)
    # The maps are in OpenCV pixel coordinates: COLMAP minus 0.5.
    np.testing.assert_allclose(sampled, expected_colmap - 0.5, atol=2e-3)


def test_fisheye_principal_point_is_forced_to_the_image_centre():
    maps = undistortion_maps(FISHEYE)
    assert maps.intrinsics[0, 2] == pytest.approx(FISHEYE.width / 2 + 0.5)
    assert maps.intrinsics[1, 2] == pytest.approx(FISHEYE.height / 2 + 0.5)
    assert maps.size == (FISHEYE.width, FISHEYE.height)


def blob_image(points_colmap: np.ndarray, width: int, height: int, sigma: float = 1.3) -> np.ndarray:
    u = np.arange(width) + 0.5
    v = np.arange(height) + 0.5
    image = np.zeros((height, width))
    for pu, pv in points_colmap:
        image += np.exp(-((u[None, :] - pu) ** 2 + (v[:, None] - pv) ** 2) / (2 * sigma**2))
    return np.clip(image * 250, 0, 255).astype(np.uint8)


def blob_centroid(image: np.ndarray, around: np.ndarray, radius: int = 6) -> np.ndarray:
    i0, j0 = int(around[0]), int(around[1])
    window = image[j0 - radius : j0 + radius + 1, i0 - radius : i0 + radius + 1].astype(np.float64)
    jj, ii = np.mgrid[j0 - radius : j0 + radius + 1, i0 - radius : i0 + radius + 1]
    w = window / window.sum()
    return np.array([(w * (ii + 0.5)).sum(), (w * (jj + 0.5)).sum()])


@pytest.mark.parametrize(("camera", "project"), [(FISHEYE, fisheye_project), (OPENCV, opencv_project)])
def test_projected_points_land_on_the_pinhole_projection(camera, project):
    rng = np.random.default_rng(3)
    maps = undistortion_maps(camera)
    K = maps.intrinsics
    # 3-D points whose pinhole projections fall well inside the undistorted image.
    targets = np.stack(
        [rng.uniform(40, camera.width - 40, 12), rng.uniform(40, camera.height - 40, 12)], axis=1
    )
    depth = rng.uniform(1.0, 4.0, 12)
    points = np.stack(
        [(targets[:, 0] - K[0, 2]) / K[0, 0] * depth, (targets[:, 1] - K[1, 2]) / K[1, 1] * depth, depth],
        axis=1,
    )
    distorted = blob_image(project(points, camera), camera.width, camera.height)
    rgb = np.repeat(distorted[..., None], 3, axis=2)
    undistorted = undistort_image(rgb, maps)
    assert undistorted.shape == rgb.shape and undistorted.dtype == np.uint8
    pinhole = np.stack(
        [K[0, 0] * points[:, 0] / depth + K[0, 2], K[1, 1] * points[:, 1] / depth + K[1, 2]], axis=1
    )
    for expected in pinhole:
        found = blob_centroid(undistorted[..., 0], expected)
        np.testing.assert_allclose(found, expected, atol=0.08)


def test_mask_is_bilinear_with_a_valid_border():
    maps = undistortion_maps(OPENCV)
    mask = np.full((OPENCV.height, OPENCV.width), 255, np.uint8)
    mask[100:180, 150:260] = 0
    out = undistort_mask(mask, maps)
    assert out.dtype == np.uint8 and out.shape == mask.shape
    # Not re-thresholded: the blurred edge of the anonymised box keeps intermediate values.
    assert ((out > 0) & (out < 255)).sum() > 50
    assert (out == 0).sum() > 0.8 * 80 * 110
    # Pixels that sample outside the source (alpha=1 keeps black corners) read as valid.
    outside = (
        (maps.map_x < -1) | (maps.map_x > OPENCV.width) | (maps.map_y < -1) | (maps.map_y > OPENCV.height)
    )
    if outside.any():
        assert np.all(out[outside] == 255)


def test_unsupported_model_is_a_bad_input():
    camera = CameraModel("FOV", 100, 80, (50.0, 50.0, 50.0, 40.0, 0.1))
    with pytest.raises(BadSceneInput, match="FOV"):
        undistortion_maps(camera)


def test_wrong_number_of_fisheye_coefficients_is_a_bad_input():
    camera = CameraModel("OPENCV_FISHEYE", 100, 80, (50.0, 50.0, 50.0, 40.0, 0.1, 0.0))
    with pytest.raises(BadSceneInput, match="k1 k2 k3 k4"):
        undistortion_maps(camera)


@pytest.mark.parametrize("camera", [FISHEYE, OPENCV])
def test_fully_valid_mask_skips_the_remap_with_the_same_result(camera):
    maps = undistortion_maps(camera)
    mask = np.full((camera.height, camera.width), 255, np.uint8)
    remapped = cv2.remap(
        mask, maps.map_x, maps.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=255
    )
    out = undistort_mask(mask, maps)
    np.testing.assert_array_equal(out, remapped)
    assert out.dtype == np.uint8 and out.shape == mask.shape
