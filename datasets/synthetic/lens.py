"""Camera lens models in COLMAP's parameterisation: OPENCV_FISHEYE (fx fy cx cy k1 k2 k3 k4, the ScanNet++
DSLR) and OPENCV (fx fy cx cy k1 k2 p1 p2, the ScanNet++ iPhone), with the exact OpenCV formulas.

Pixel coordinates follow COLMAP: the centre of the top-left pixel is (0.5, 0.5). Subtract 0.5 to get
OpenCV's convention (pixel centres at integers) before calling cv2.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from datasets.scannetpp.record import CameraModel


@dataclass(frozen=True)
class Lens:
    model: str  # "OPENCV_FISHEYE" or "OPENCV"
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    dist: tuple[float, float, float, float]

    @classmethod
    def from_camera(cls, camera: CameraModel) -> Lens:
        if camera.model not in ("OPENCV_FISHEYE", "OPENCV"):
            raise ValueError(f"unsupported camera model {camera.model}; expected OPENCV_FISHEYE or OPENCV")
        fx, fy, cx, cy, *dist = camera.params
        return cls(camera.model, camera.width, camera.height, fx, fy, cx, cy, tuple(dist))

    def camera(self) -> CameraModel:
        return CameraModel(
            self.model, self.width, self.height, (self.fx, self.fy, self.cx, self.cy, *self.dist)
        )

    def K(self) -> np.ndarray:
        """(3, 3) intrinsics in the COLMAP pixel convention."""
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1.0]])

    # -- normalised image plane ---------------------------------------------------------------------------
    def distort(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ideal pinhole coordinates (x, y) = (X/Z, Y/Z) -> distorted normalised coordinates."""
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if self.model == "OPENCV_FISHEYE":
            k1, k2, k3, k4 = self.dist
            r = np.hypot(x, y)
            theta = np.arctan(r)
            t2 = theta * theta
            theta_d = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
            scale = np.where(r > 1e-12, theta_d / np.maximum(r, 1e-12), 1.0)
            return x * scale, y * scale
        k1, k2, p1, p2 = self.dist
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2 * r2
        return (
            x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
            y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y,
        )

    def undistort(
        self, xd: np.ndarray, yd: np.ndarray, iterations: int = 30
    ) -> tuple[np.ndarray, np.ndarray]:
        """Distorted normalised coordinates -> ideal pinhole coordinates (inverse of `distort`)."""
        xd, yd = np.asarray(xd, dtype=np.float64), np.asarray(yd, dtype=np.float64)
        if self.model == "OPENCV_FISHEYE":
            k1, k2, k3, k4 = self.dist
            theta_d = np.hypot(xd, yd)
            theta = theta_d.copy()
            for _ in range(iterations):  # Newton on theta * (1 + k1 t^2 + ...) = theta_d
                t2 = theta * theta
                f = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4)))) - theta_d
                df = 1 + t2 * (3 * k1 + t2 * (5 * k2 + t2 * (7 * k3 + t2 * 9 * k4)))
                theta = np.clip(theta - f / df, 0.0, np.pi / 2 - 1e-6)
            scale = np.where(theta_d > 1e-12, np.tan(theta) / np.maximum(theta_d, 1e-12), 1.0)
            return xd * scale, yd * scale
        x, y = xd.copy(), yd.copy()
        for _ in range(iterations):  # fixed point, as cv2.undistortPoints does
            dx, dy = self.distort(x, y)
            x, y = x - (dx - xd), y - (dy - yd)
        return x, y

    # -- pixels ------------------------------------------------------------------------------------------
    def project(self, points_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) camera-frame points (OpenCV axes) -> (N, 2) COLMAP-convention pixels and (N,) bool mask of
        points in front of the camera that land inside the image."""
        z = points_cam[:, 2]
        front = z > 1e-6
        safe_z = np.where(front, z, 1.0)
        xd, yd = self.distort(points_cam[:, 0] / safe_z, points_cam[:, 1] / safe_z)
        uv = np.stack([self.fx * xd + self.cx, self.fy * yd + self.cy], axis=1)
        if self.model == "OPENCV_FISHEYE":
            # beyond 90 degrees the fisheye formula folds back; those points are not imaged
            front &= np.hypot(points_cam[:, 0], points_cam[:, 1]) < 50 * safe_z
        inside = (uv[:, 0] >= 0) & (uv[:, 0] < self.width) & (uv[:, 1] >= 0) & (uv[:, 1] < self.height)
        return uv, front & inside

    def pixel_grid_rays(self, step: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ideal pinhole coordinates of the pixel centres of every `step`-th pixel (cached, read-only).

        Returns (x, y) each (H', W') and the (H', W', 2) COLMAP-convention pixel coordinates."""
        return _grid_rays(self, step)


@lru_cache(maxsize=16)
def _grid_rays(lens: Lens, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    u = np.arange(0, lens.width, step) + 0.5
    v = np.arange(0, lens.height, step) + 0.5
    uu, vv = np.meshgrid(u, v)
    x, y = lens.undistort((uu - lens.cx) / lens.fx, (vv - lens.cy) / lens.fy)
    uv = np.stack([uu, vv], -1)
    for array in (x, y, uv):
        array.flags.writeable = False
    return x, y, uv
