"""Distorted images from pinhole renders: render a wider pinhole view, then resample it into the
OPENCV_FISHEYE (or OPENCV) image with the exact lens model, so that undistorting the result with
cv2.fisheye (or cv2.undistort) gives back the pinhole projection.

For every pixel centre of the distorted image the warp takes the ray through it (`Lens.undistort`) and
looks it up in the pinhole image; `cv2.remap` does the interpolation.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from datasets.synthetic.lens import Lens


@dataclass(frozen=True)
class DistortionWarp:
    """Maps a pinhole render (pinhole_size, pinhole_intrinsics in the COLMAP convention) onto the lens image."""

    lens: Lens
    pinhole_intrinsics: np.ndarray  # (3, 3)
    pinhole_size: tuple[int, int]  # (W, H)
    map_x: np.ndarray  # (H, W) float32, OpenCV pixel convention of the pinhole image
    map_y: np.ndarray


def make_warp(lens: Lens, focal_scale: float = 1.0) -> DistortionWarp:
    """Pinhole camera with the lens' focal length times `focal_scale`, just large enough to cover every
    ray of the distorted image, and the remap tables from the distorted image into it."""
    x, y, _ = lens.pixel_grid_rays(1)
    fx, fy = lens.fx * focal_scale, lens.fy * focal_scale
    half_w = int(np.ceil(np.abs(x).max() * fx)) + 2
    half_h = int(np.ceil(np.abs(y).max() * fy)) + 2
    width, height = 2 * half_w, 2 * half_h
    K = np.array([[fx, 0.0, width / 2], [0.0, fy, height / 2], [0.0, 0.0, 1.0]])
    map_x = (fx * x + K[0, 2] - 0.5).astype(np.float32)
    map_y = (fy * y + K[1, 2] - 0.5).astype(np.float32)
    return DistortionWarp(lens, K, (width, height), map_x, map_y)


def warp_image(image: np.ndarray, warp: DistortionWarp, nearest: bool = False) -> np.ndarray:
    """Resample a pinhole render (Hp, Wp[, C]) into the distorted image (H, W[, C])."""
    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.remap(image, warp.map_x, warp.map_y, interpolation, borderMode=cv2.BORDER_REPLICATE)
