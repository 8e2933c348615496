"""The lens models match OpenCV exactly, and the fisheye warp is undone by cv2.fisheye undistortion."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from datasets.synthetic.fisheye import make_warp, warp_image
from datasets.synthetic.lens import Lens

FISHEYE = Lens("OPENCV_FISHEYE", 292, 195, 180.5, 180.2, 147.3, 96.8, (-0.03, 0.008, -0.0015, 0.0003))
IPHONE = Lens("OPENCV", 320, 240, 245.0, 246.0, 161.0, 119.0, (0.02, -0.01, 0.0004, -0.0003))


def _cv_K(lens: Lens) -> np.ndarray:
    K = lens.K()
    K[0, 2] -= 0.5  # COLMAP -> OpenCV pixel convention
    K[1, 2] -= 0.5
    return K


def _pixels(lens: Lens, count: int = 500) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.stack([rng.uniform(0, lens.width, count), rng.uniform(0, lens.height, count)], 1)


@pytest.mark.parametrize("lens", [FISHEYE, IPHONE], ids=["fisheye", "opencv"])
def test_undistort_matches_opencv(lens):
    uv = _pixels(lens)
    x, y = lens.undistort((uv[:, 0] - lens.cx) / lens.fx, (uv[:, 1] - lens.cy) / lens.fy)
    points = (uv - 0.5).reshape(-1, 1, 2)
    if lens.model == "OPENCV_FISHEYE":
        expected = cv2.fisheye.undistortPoints(points, _cv_K(lens), np.array(lens.dist)).reshape(-1, 2)
    else:
        criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
        expected = cv2.undistortPoints(points, _cv_K(lens), np.array(lens.dist), criteria=criteria).reshape(
            -1, 2
        )
    # compare in pixels of a unit-focal camera scaled by fx: sub-pixel means < 0.01 px here
    np.testing.assert_allclose(np.stack([x, y], 1) * lens.fx, expected * lens.fx, atol=1e-3)


@pytest.mark.parametrize("lens", [FISHEYE, IPHONE], ids=["fisheye", "opencv"])
def test_projection_matches_opencv(lens):
    rng = np.random.default_rng(1)
    points = np.stack([rng.uniform(-1, 1, 300), rng.uniform(-0.7, 0.7, 300), rng.uniform(1, 3, 300)], 1)
    uv, _ = lens.project(points)
    if lens.model == "OPENCV_FISHEYE":
        expected, _ = cv2.fisheye.projectPoints(
            points.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), _cv_K(lens), np.array(lens.dist)
        )
    else:
        expected, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), _cv_K(lens), np.array(lens.dist))
    np.testing.assert_allclose(uv - 0.5, expected.reshape(-1, 2), atol=1e-6)


def test_distort_undistort_round_trip():
    x = np.linspace(-1.2, 1.2, 41)
    xx, yy = np.meshgrid(x, x * 0.7)
    for lens in (FISHEYE, IPHONE):
        back = lens.undistort(*lens.distort(xx, yy))
        np.testing.assert_allclose(back[0], xx, atol=1e-9)
        np.testing.assert_allclose(back[1], yy, atol=1e-9)


def _dots_image(width: int, height: int, centres: np.ndarray) -> np.ndarray:
    """Smooth Gaussian blobs at sub-pixel OpenCV-convention centres (so interpolation stays accurate)."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    image = np.zeros((height, width))
    for cx, cy in centres:
        image += np.exp(-((u - cx) ** 2 + (v - cy) ** 2) / (2 * 2.5**2))
    return np.clip(image * 250, 0, 255).astype(np.float32)


def _centroid(image: np.ndarray, centre: np.ndarray, radius: int = 7) -> np.ndarray:
    x0, y0 = np.round(centre).astype(int)
    patch = image[y0 - radius : y0 + radius + 1, x0 - radius : x0 + radius + 1].astype(np.float64)
    v, u = np.mgrid[y0 - radius : y0 + radius + 1, x0 - radius : x0 + radius + 1]
    return np.array([(patch * u).sum(), (patch * v).sum()]) / patch.sum()


def test_fisheye_warp_is_undone_by_cv2_fisheye_undistortion():
    """Render-like pinhole image -> our fisheye warp -> the official undistortion recipe (cv2.fisheye maps
    onto the same pinhole K) gives the pinhole image back: blob centres agree to a small fraction of a pixel."""
    warp = make_warp(FISHEYE, focal_scale=0.85)
    width, height = warp.pinhole_size
    K_pin = warp.pinhole_intrinsics.copy()
    K_pin[:2, 2] -= 0.5
    # well-separated blobs at rays the fisheye image sees, out to its borders
    gu, gv = np.meshgrid(np.linspace(0.08, 0.92, 5), np.linspace(0.1, 0.9, 4))
    fish_uv = np.stack([gu.ravel() * FISHEYE.width + 0.3, gv.ravel() * FISHEYE.height + 0.2], 1)
    x, y = FISHEYE.undistort(
        (fish_uv[:, 0] - FISHEYE.cx) / FISHEYE.fx, (fish_uv[:, 1] - FISHEYE.cy) / FISHEYE.fy
    )
    centres = np.stack([K_pin[0, 0] * x + K_pin[0, 2], K_pin[1, 1] * y + K_pin[1, 2]], 1)
    pinhole = _dots_image(width, height, centres)

    fisheye = warp_image(pinhole, warp)
    assert fisheye.shape == (FISHEYE.height, FISHEYE.width)
    map_x, map_y = cv2.fisheye.initUndistortRectifyMap(
        _cv_K(FISHEYE), np.array(FISHEYE.dist), np.eye(3), K_pin, (width, height), cv2.CV_32FC1
    )
    restored = cv2.remap(fisheye, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    errors = [np.linalg.norm(_centroid(restored, c) - c) for c in centres]
    assert max(errors) < 0.1, errors
    # and the blobs land where cv2.fisheye.distortPoints puts them in the distorted image
    distorted = cv2.fisheye.distortPoints(
        np.stack([x, y], 1).reshape(-1, 1, 2), _cv_K(FISHEYE), np.array(FISHEYE.dist)
    )
    for expected in distorted.reshape(-1, 2):
        assert np.linalg.norm(_centroid(fisheye, expected) - expected) < 0.15


def test_warp_covers_every_fisheye_pixel():
    warp = make_warp(FISHEYE)
    width, height = warp.pinhole_size
    assert warp.map_x.min() >= 0 and warp.map_x.max() <= width - 1
    assert warp.map_y.min() >= 0 and warp.map_y.max() <= height - 1
