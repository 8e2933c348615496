"""Undistortion of ScanNet++ images to a pinhole camera, as the official (dust3r/PanSt3R) preprocessing does it.

The remap tables are float (cv2.CV_32FC1, as in the ScanNet++ toolkit recipe the official code follows):
fixed-point CV_16SC2 tables give pixels that differ by a few grey levels.

Intrinsics enter and leave in the COLMAP pixel convention (the centre of the top-left pixel is (0.5, 0.5));
OpenCV wants the centre at (0, 0), hence the -0.5 / +0.5 shifts around the cv2 calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from datasets.preprocess.errors import BadSceneInput
from datasets.scannetpp.camera_checks import camera_problems
from datasets.scannetpp.record import CameraModel

SUPPORTED_MODELS = ("OPENCV_FISHEYE", "OPENCV", "PINHOLE")


@dataclass(frozen=True)
class UndistortMaps:
    """Remap tables of one camera: output pixel (v, u) samples the input at (map_y[v, u], map_x[v, u]).

    map_x, map_y: (H, W) float32 in OpenCV pixel coordinates; intrinsics: (3, 3) float64 new K, COLMAP convention."""

    map_x: np.ndarray
    map_y: np.ndarray
    intrinsics: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the undistorted image (equal to the input size)."""
        return int(self.map_x.shape[1]), int(self.map_x.shape[0])


def colmap_to_opencv_K(K: np.ndarray) -> np.ndarray:
    K = np.array(K, dtype=np.float64)
    K[0, 2] -= 0.5
    K[1, 2] -= 0.5
    return K


def opencv_to_colmap_K(K: np.ndarray) -> np.ndarray:
    K = np.array(K, dtype=np.float64)
    K[0, 2] += 0.5
    K[1, 2] += 0.5
    return K


def camera_K(camera: CameraModel) -> np.ndarray:
    """(3, 3) float64 pinhole matrix of a COLMAP camera, COLMAP convention."""
    return np.array([[camera.fx, 0.0, camera.cx], [0.0, camera.fy, camera.cy], [0.0, 0.0, 1.0]])


def undistortion_maps(camera: CameraModel) -> UndistortMaps:
    """The official recipe: fisheye -> balance 0 with the principal point forced to the image centre;
    OPENCV/PINHOLE -> getOptimalNewCameraMatrix(alpha=1, centerPrincipalPoint=True). Output size = input size."""
    if camera.model not in SUPPORTED_MODELS:
        raise BadSceneInput(
            f"camera model {camera.model!r} is not supported by the preprocessing; "
            f"cameras.txt must use one of {', '.join(SUPPORTED_MODELS)}"
        )
    W, H = int(camera.width), int(camera.height)
    K_cv = colmap_to_opencv_K(camera_K(camera))
    dist = np.asarray(camera.distortion, dtype=np.float64)
    if camera.model == "OPENCV_FISHEYE":
        if dist.shape != (4,):
            raise BadSceneInput(
                f"OPENCV_FISHEYE camera needs 4 distortion parameters (k1 k2 k3 k4) in cameras.txt, got {dist.size}"
            )
        new_K = cv2.fisheye.estimateNewCameraMatrixForUndistortRectify(
            K_cv, dist, (W, H), np.eye(3), balance=0.0
        )
        new_K[0, 2] = W / 2
        new_K[1, 2] = H / 2
        map_x, map_y = cv2.fisheye.initUndistortRectifyMap(K_cv, dist, np.eye(3), new_K, (W, H), cv2.CV_32FC1)
    else:
        if camera.model == "OPENCV" and dist.shape != (4,):
            raise BadSceneInput(
                f"OPENCV camera needs 4 distortion parameters (k1 k2 p1 p2) in cameras.txt, got {dist.size}"
            )
        new_K, _roi = cv2.getOptimalNewCameraMatrix(K_cv, dist, (W, H), 1, (W, H), True)
        map_x, map_y = cv2.initUndistortRectifyMap(K_cv, dist, np.eye(3), new_K, (W, H), cv2.CV_32FC1)
    maps = UndistortMaps(map_x=map_x, map_y=map_y, intrinsics=opencv_to_colmap_K(new_K))
    _check_undistorted(camera, maps)
    return maps


def _check_undistorted(camera: CameraModel, maps: UndistortMaps) -> None:
    """Distortion coefficients that no lens has can give an undistorted camera that is itself impossible
    (non-finite or negative focal length) or remap tables of NaN; both would pass on silently."""
    K = maps.intrinsics
    pinhole = CameraModel("PINHOLE", camera.width, camera.height, (K[0, 0], K[1, 1], K[0, 2], K[1, 2]))
    problems = camera_problems(pinhole)
    if not (np.isfinite(maps.map_x).all() and np.isfinite(maps.map_y).all()):
        problems.append("the undistortion tables hold NaN or infinity")
    if problems:
        raise BadSceneInput(
            f"{camera.model} camera with distortion {' '.join(f'{d:g}' for d in camera.distortion)} cannot "
            f"be undistorted: {'; '.join(problems)}; check the distortion PARAMS in cameras.txt"
        )


def undistort_image(image: np.ndarray, maps: UndistortMaps) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W, 3) uint8: bilinear, mirrored border (cv2 BORDER_REFLECT_101)."""
    return cv2.remap(image, maps.map_x, maps.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def undistort_mask(mask: np.ndarray, maps: UndistortMaps) -> np.ndarray:
    """(H, W) uint8 -> (H, W) uint8: bilinear and NOT re-thresholded (border pixels keep fractional values);
    outside the source image counts as valid (255), as in the official script. A fully valid mask (most
    frames show nobody) stays fully valid: bilinear weights of 255s sum to 255 exactly, so no remap."""
    if mask.size and mask.min() == 255:
        return np.full((maps.size[1], maps.size[0]), 255, dtype=np.uint8)
    return cv2.remap(
        mask, maps.map_x, maps.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=255
    )
