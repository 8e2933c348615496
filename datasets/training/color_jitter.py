"""Colour jitter in torch: brightness, contrast, saturation and hue, applied in a random order.

The official training transform is torchvision's `ColorJitter(0.5, 0.5, 0.5, 0.1)` followed by the
normalisation to [-1, 1]; this is the same recipe written against plain tensors, with every random draw
taken from the numpy generator of the sample (so a sample is reproducible in any loader worker).
"""

from __future__ import annotations

from dataclasses import dataclass

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


def rgb_to_hsv(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) RGB in [0, 1] -> (3, H, W) HSV, hue in [0, 1).

    The hue sector comes from which channel is the largest (ties give the same hue either way)."""
    r, g, b = image.unbind(0)
    maxc, largest = image.max(dim=0)
    delta = maxc - image.min(dim=0).values
    safe_delta = torch.where(delta > 0, delta, torch.ones_like(delta))
    saturation = delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc))
    # Largest channel R, G, B -> hue in sixths: (G - B) / d, 2 + (B - R) / d, 4 + (R - G) / d.
    numerators = torch.stack([g - b, b - r, r - g])
    hue = numerators.gather(0, largest.unsqueeze(0)).squeeze(0) / safe_delta + 2.0 * largest
    hue = torch.where(delta > 0, (hue / 6.0) % 1.0, torch.zeros_like(hue))
    return torch.stack([hue, saturation, maxc])


def hsv_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) HSV (hue in [0, 1)) -> (3, H, W) RGB.

    Closed form per channel: c = V - V S clamp(min(k, 4 - k), 0, 1) with k = (n + 6 H) mod 6 and
    n = 5, 3, 1 for R, G, B (cheaper than building the six-sector table)."""
    hue, saturation, value = image.unbind(0)
    offsets = torch.tensor([5.0, 3.0, 1.0], dtype=image.dtype, device=image.device).view(3, 1, 1)
    k = (offsets + hue.unsqueeze(0) * 6.0) % 6.0
    ramp = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    chroma = (value * saturation).unsqueeze(0)
    return value.unsqueeze(0) - chroma * ramp


def adjust_hue(image: torch.Tensor, shift: float) -> torch.Tensor:
    """Rotate the hue by `shift` turns (in [-0.5, 0.5])."""
    hsv = rgb_to_hsv(image)
    hsv[0] = (hsv[0] + shift) % 1.0
    return hsv_to_rgb(hsv).clamp_(0.0, 1.0)


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
