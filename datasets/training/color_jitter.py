"""Colour jitter: brightness, contrast, saturation and hue, applied in a random order.

The official training transform is torchvision's `ColorJitter(0.5, 0.5, 0.5, 0.1)` followed by the
normalisation to [-1, 1]; this is the same recipe written against plain tensors, with every random draw
taken from the numpy generator of the sample (so a sample is reproducible in any loader worker).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

# ITU-R 601 luma weights, as used for grayscale by torchvision/PIL.
LUMA = (0.299, 0.587, 0.114)


def grayscale(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) -> (1, H, W) luma."""
    r, g, b = image.unbind(0)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(0)


def _blend(image: torch.Tensor, other: torch.Tensor, factor: float) -> torch.Tensor:
    return (factor * image + (1.0 - factor) * other).clamp_(0.0, 1.0)


def adjust_brightness(image: torch.Tensor, factor: float) -> torch.Tensor:
    return (image * factor).clamp_(0.0, 1.0)


def adjust_contrast(image: torch.Tensor, factor: float) -> torch.Tensor:
    return _blend(image, grayscale(image).mean(), factor)


def adjust_saturation(image: torch.Tensor, factor: float) -> torch.Tensor:
    return _blend(image, grayscale(image), factor)


def _channels_last(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) tensor -> (H, W, 3) contiguous float32 array, what OpenCV's colour conversions take."""
    return np.ascontiguousarray(image.detach().to("cpu", torch.float32).permute(1, 2, 0).numpy())


def _channels_first(array: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(array).permute(2, 0, 1).contiguous().to(like.dtype)


# The HSV conversions are OpenCV's float ones (hue in degrees): colorsys's formulas, about 3x faster than the
# same formulas as a chain of torch element-wise operations (a hue shift of a 512x384 view: 11 -> 3.4 ms),
# which made the hue the largest cost of a loader worker's view.


def rgb_to_hsv(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) RGB in [0, 1] -> (3, H, W) HSV, hue in [0, 1); grey pixels get hue and saturation 0."""
    hsv = cv2.cvtColor(_channels_last(image), cv2.COLOR_RGB2HSV)
    hue = hsv[..., 0]
    np.mod(hue * (1.0 / 360.0), 1.0, out=hue)
    return _channels_first(hsv, image)


def hsv_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) HSV (hue in [0, 1)) -> (3, H, W) RGB."""
    hsv = _channels_last(image)
    hsv[..., 0] *= 360.0
    return _channels_first(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), image)


def adjust_hue(image: torch.Tensor, shift: float) -> torch.Tensor:
    """Rotate the hue by `shift` turns (in [-0.5, 0.5])."""
    hsv = cv2.cvtColor(_channels_last(image), cv2.COLOR_RGB2HSV)
    hue = hsv[..., 0]
    hue += shift * 360.0
    np.mod(hue, 360.0, out=hue)
    return _channels_first(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), image).clamp_(0.0, 1.0)


@dataclass(frozen=True)
class ColorJitter:
    """Random brightness/contrast/saturation factors in [1 - x, 1 + x] and a hue shift in [-hue, hue]."""

    brightness: float = 0.5
    contrast: float = 0.5
    saturation: float = 0.5
    hue: float = 0.1

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ValueError(f"ColorJitter.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(f"ColorJitter.hue must be in [0, 0.5], got {self.hue}")

    def __call__(self, image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """image (3, H, W) float in [0, 1] -> jittered copy in [0, 1]."""
        image = image.clone()
        for op in rng.permutation(4):
            if op == 0 and self.brightness > 0:
                image = adjust_brightness(image, self._factor(self.brightness, rng))
            elif op == 1 and self.contrast > 0:
                image = adjust_contrast(image, self._factor(self.contrast, rng))
            elif op == 2 and self.saturation > 0:
                image = adjust_saturation(image, self._factor(self.saturation, rng))
            elif op == 3 and self.hue > 0:
                image = adjust_hue(image, float(rng.uniform(-self.hue, self.hue)))
        return image

    @staticmethod
    def _factor(amount: float, rng: np.random.Generator) -> float:
        return float(rng.uniform(max(0.0, 1.0 - amount), 1.0 + amount))
