"""The dust3r rescale (`rescale_image_depthmap`) used by the official preprocessing.

The image is scaled so that it covers (target, 3/4 target) -- both sides at least that large -- keeping its
aspect ratio. The tiny +1e-8 keeps floor() from losing a pixel to rounding (1752*690/1168 = 1035.0).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image


@dataclass(frozen=True)
class RescalePlan:
    """How one input size maps to an output size: scale factor and (width, height) before and after."""

    scale: float
    in_size: tuple[int, int]
    out_size: tuple[int, int]

    @property
    def upscales(self) -> bool:
        return self.scale >= 1.0


def rescale_plan(width: int, height: int, target_resolution: int = 920) -> RescalePlan:
    """s = max(target/W, (3/4 target)/H) + 1e-8; out = floor((W, H) * s). 1752x1168 -> 1035x690 at 920."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if target_resolution <= 0:
        raise ValueError(f"target_resolution must be positive, got {target_resolution}")
    target = np.array([target_resolution, target_resolution * 3 // 4], dtype=np.float64)
    in_size = np.array([width, height], dtype=np.float64)
    scale = float(np.max(target / in_size)) + 1e-8
    out = np.floor(in_size * scale).astype(int)
    return RescalePlan(scale=scale, in_size=(int(width), int(height)), out_size=(int(out[0]), int(out[1])))


def rescale_intrinsics(K_colmap: np.ndarray, plan: RescalePlan) -> np.ndarray:
    """(3, 3) COLMAP-convention K of the rescaled image.

    dust3r's `camera_matrix_of_crop` with a pure scaling: in the COLMAP convention multiply the first two rows
    by s, then shift the principal point by half the rounding margin, margin = in_size * s - out_size
    (a few 1e-5 px: the floor crops that sliver, half on each side):
        K'[:2, :] = s * K[:2, :];   K'[:2, 2] -= 0.5 * (in_size * s - out_size)."""
    K = np.array(K_colmap, dtype=np.float64)
    margin = np.asarray(plan.in_size, dtype=np.float64) * plan.scale - np.asarray(
        plan.out_size, dtype=np.float64
    )
    K[:2, :] *= plan.scale
    K[:2, 2] -= 0.5 * margin
    return K


def rescale_image(image: np.ndarray, plan: RescalePlan) -> Image.Image:
    """(H, W, 3) uint8 -> (H', W') PIL RGB image: LANCZOS when shrinking, BICUBIC when enlarging. Left as a PIL
    image because the next step encodes it to JPEG: turning it into an array first would repack PIL's
    4-byte RGBX rows (about a third of the resize's own time on a 1035x690 frame)."""
    resample = Image.Resampling.BICUBIC if plan.upscales else Image.Resampling.LANCZOS
    return Image.fromarray(image).resize(plan.out_size, resample=resample)


def rescale_mask(mask: np.ndarray, plan: RescalePlan) -> np.ndarray:
    """(H, W) uint8 -> (H', W') uint8 with cv2 nearest neighbour (the dust3r depth-map path)."""
    return cv2.resize(mask, plan.out_size, interpolation=cv2.INTER_NEAREST)
