"""The torch remap equals cv2.remap bit for bit: the float-map arithmetic of this OpenCV (float_fma) and its
fixed-point arithmetic (fixed_point, which OpenCV 4.10 and earlier used for float maps too and which OpenCV
still uses for CV_16SC2 maps), bilinear with BORDER_REFLECT_101."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from datasets.preprocess.opencv_remap import TorchRemap, reflect_101
from datasets.preprocess.undistort import undistortion_maps
from datasets.scannetpp.record import CameraModel

FISHEYE = CameraModel("OPENCV_FISHEYE", 412, 274, (190.0, 191.5, 206.8, 136.2, 0.05, -0.02, 0.01, -0.003))


def opencv(image, map_x, map_y, variant: str) -> np.ndarray:
    if variant == "fixed_point":
        map_x, map_y = cv2.convertMaps(map_x, map_y, cv2.CV_16SC2)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def probe_maps(rng, shape, width, height):
    """Maps reaching past every border, some by more than the image (repeated reflection)."""
    map_x = rng.uniform(-1.5 * width, 2.5 * width, shape).astype(np.float32)
    map_y = rng.uniform(-1.5 * height, 2.5 * height, shape).astype(np.float32)
    map_x[::7] = np.round(map_x[::7])  # whole and half pixels, where rounding ties are decided
    map_y[::5] = np.round(map_y[::5] * 2) / 2
    return map_x, map_y


@pytest.mark.parametrize("variant", ["fixed_point", "float_fma"])
def test_undistortion_equals_opencv(variant):
    maps = undistortion_maps(FISHEYE)
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (FISHEYE.height, FISHEYE.width, 3), dtype=np.uint8)
    got = TorchRemap(maps.map_x, maps.map_y, maps.size, variant, "cpu")(torch.from_numpy(image)).numpy()
    np.testing.assert_array_equal(got, opencv(image, maps.map_x, maps.map_y, variant))


@pytest.mark.parametrize("variant", ["fixed_point", "float_fma"])
def test_borders_and_far_outside_equal_opencv(variant):
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    map_x, map_y = probe_maps(rng, (64, 80), 53, 37)
    got = TorchRemap(map_x, map_y, (53, 37), variant, "cpu")(torch.from_numpy(image)).numpy()
    np.testing.assert_array_equal(got, opencv(image, map_x, map_y, variant))


def test_the_two_variants_differ():
    """Why frame_device.py checks which one this OpenCV uses before trusting either."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    map_x, map_y = probe_maps(rng, (30, 30), 50, 40)
    outputs = [
        TorchRemap(map_x, map_y, (50, 40), v, "cpu")(torch.from_numpy(image)).numpy()
        for v in ("fixed_point", "float_fma")
    ]
    assert not np.array_equal(*outputs)


def test_reflect_101_equals_opencv_border_interpolation():
    for size in (1, 2, 5):
        for index in range(-13, 14):
            expected = cv2.borderInterpolate(index, size, cv2.BORDER_REFLECT_101)
            assert reflect_101(np.array([index]), size)[0] == expected, (index, size)


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="remap variant"):
        TorchRemap(np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32), (2, 2), "nearest", "cpu")
