"""The dust3r rescale (`rescale_image_depthmap`) used by the official preprocessing: the image, mask and
intrinsics operations of a RescalePlan (datasets.preprocess.rescale_plan)."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from datasets.preprocess.rescale_plan import RescalePlan


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


PIL_FILTERS = {"lanczos": Image.Resampling.LANCZOS, "bicubic": Image.Resampling.BICUBIC}


def image_filter(plan: RescalePlan) -> str:
    """The resampling filter of the image (a key of PIL_FILTERS): LANCZOS when shrinking, BICUBIC when
    enlarging, as dust3r's rescale."""
    return "bicubic" if plan.upscales else "lanczos"


def rescale_image(image: np.ndarray, plan: RescalePlan) -> Image.Image:
    """(H, W, 3) uint8 -> (H', W') PIL RGB image with `image_filter(plan)`. Left as a PIL image because the next
    step encodes it to JPEG: turning it into an array first would repack PIL's 4-byte RGBX rows (about a third
    of the resize's own time on a 1035x690 frame)."""
    return Image.fromarray(image).resize(plan.out_size, resample=PIL_FILTERS[image_filter(plan)])


def rescale_mask(mask: np.ndarray, plan: RescalePlan) -> np.ndarray:
    """(H, W) uint8 -> (H', W') uint8 with cv2 nearest neighbour (the dust3r depth-map path)."""
    return cv2.resize(mask, plan.out_size, interpolation=cv2.INTER_NEAREST)
