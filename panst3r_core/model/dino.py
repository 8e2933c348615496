"""DINOv2 branch: `transformers.Dinov2Model` built from a config (never downloaded) + official pre-processing.

Pre-processing: [-1, 1] -> [0, 1] -> ImageNet normalisation -> bilinear resize (align_corners=False, no
antialias) to (H//16*14, W//16*14) so that the 14-px DINO patches give the same grid as the 16-px MUSt3R
patches. transformers interpolates the position embeddings bicubically to that grid. Output: the last hidden
state (after the final LayerNorm) without the CLS token.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from panst3r_core.model.config import DinoConfig

if TYPE_CHECKING:
    from transformers import Dinov2Config

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# DinoConfig fields that are ours, not transformers'.
_WRAPPER_FIELDS = ("model_id", "output_stride", "landscape_only")


def to_hf_config(cfg: DinoConfig) -> Dinov2Config:
    # transformers is imported where a model is built, not with the module: it takes about 2 s, and the
    # processes that only resolve a training config (a launch's parent) never build one.
    from transformers import Dinov2Config

    fields = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _WRAPPER_FIELDS}
    hf = Dinov2Config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, drop_path_rate=0.0, **fields)
    hf._attn_implementation = "sdpa"
    return hf


class DinoEncoder(nn.Module):
    """Holds the HF model as `.dinov2` (so parameter names are `dinov2.*` as in the official checkpoints)."""

    def __init__(self, cfg: DinoConfig) -> None:
        super().__init__()
        from transformers import Dinov2Model

        self.cfg = cfg
        self.dinov2 = Dinov2Model(to_hf_config(cfg))
        self.register_buffer("_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def pixel_values(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) in [-1, 1] -> DINO input (B, 3, H//16*14, W//16*14)."""
        x = (images * 0.5 + 0.5 - self._mean) / self._std
        stride, patch = self.cfg.output_stride, self.cfg.patch_size
        size = (images.shape[-2] // stride * patch, images.shape[-1] // stride * patch)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) in [-1, 1], landscape -> patch tokens (B, H/16*W/16, hidden)."""
        out = self.dinov2(pixel_values=self.pixel_values(images)).last_hidden_state
        return out[:, 1:]
