"""Intrinsics no real camera can have, found when `cameras.txt` is read (before any pixel is touched).

Such a camera does not crash the preprocessing: OpenCV undistorts with it, and the frames come out
silently wrong. A negative focal length, for one, turns the undistorted RGB by 180 degrees while the
depth and ids rendered from the same K stay upright, so every label lands on the wrong pixels.
"""

from __future__ import annotations

import math

from datasets.scannetpp.record import CameraModel


def camera_problems(camera: CameraModel) -> list[str]:
    """What is impossible about `camera` (empty when nothing is), one phrase per problem naming the field."""
    if camera.width <= 0 or camera.height <= 0:
        return [f"WIDTH HEIGHT {camera.width} {camera.height} must both be positive (pixels)"]
    if not all(math.isfinite(value) for value in camera.params):
        return [f"PARAMS {' '.join(str(p) for p in camera.params)} contain NaN or infinity"]
    problems = []
    if camera.fx <= 0 or camera.fy <= 0:
        problems.append(
            f"focal length fx={camera.fx:g} fy={camera.fy:g} must be positive (pixels); a negative focal "
            "length would turn the undistorted image by 180 degrees against its depth and labels"
        )
    # COLMAP's pixel convention: the image spans [0, WIDTH] x [0, HEIGHT].
    if not (0 < camera.cx < camera.width and 0 < camera.cy < camera.height):
        problems.append(
            f"principal point cx={camera.cx:g} cy={camera.cy:g} lies outside the "
            f"{camera.width}x{camera.height} image"
        )
    return problems


def check_camera(camera: CameraModel, where: str) -> None:
    """ValueError naming `where` (file, line, camera id) and every problem of `camera`."""
    problems = camera_problems(camera)
    if problems:
        raise ValueError(
            f"{where}: impossible {camera.model} camera: {'; '.join(problems)}. Fix the PARAMS of this "
            "line (fx fy cx cy in pixels) or re-export the COLMAP model"
        )
