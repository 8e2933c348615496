"""The output size of the dust3r rescale (`rescale_image_depthmap`) used by the official preprocessing.

The image is scaled so that it covers (target, 3/4 target) -- both sides at least that large -- keeping its
aspect ratio. The tiny +1e-8 keeps floor() from losing a pixel to rounding (1752*690/1168 = 1035.0).
Arithmetic only (no image library): the flow process plans frame chunks with it before any image is read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
