"""v1 upscaler: stride-16 tokens -> stride-2 mask features through three (MLP, pixel_shuffle(2)) stages.

pixel_shuffle channel convention: output channel c at sub-pixel (i, j) comes from input channel 4c + 2i + j.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from panst3r_core.model.blocks import Mlp
from panst3r_core.model.config import PixelShuffleConfig


def tokens_to_grid(tokens: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
    """(B, h*w, C) row-major tokens -> (B, C, h, w)."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, grid_hw[0], grid_hw[1])


class PixelShuffleUpscaler(nn.Module):
    def __init__(self, cfg: PixelShuffleConfig) -> None:
        super().__init__()
        self.cfg = cfg
        f = cfg.hidden_dim_factor
        d16, d8, d4, d2 = cfg.fp_dim
        self.proj_8 = Mlp(cfg.input_dim, int(f * cfg.input_dim), d8 * 4)
        self.proj_4 = Mlp(d8, int(f * d8), d4 * 4)
        self.proj_2 = Mlp(d4, int(f * d4), d2 * 4)
        self.proj_16 = Mlp(cfg.input_dim, int(f * cfg.input_dim), d16)

    def forward(self, tokens: torch.Tensor, grid_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (B, h*w, C) -> f16 (B, fp_dim[0], h, w), mask features (B, fp_dim[3], 8h, 8w)."""
        h, w = grid_hw
        f8 = F.pixel_shuffle(tokens_to_grid(self.proj_8(tokens), (h, w)), 2)
        f4 = self.proj_4(f8.flatten(2).transpose(1, 2))
        f4 = F.pixel_shuffle(tokens_to_grid(f4, (2 * h, 2 * w)), 2)
        f2 = self.proj_2(f4.flatten(2).transpose(1, 2))
        f2 = F.pixel_shuffle(tokens_to_grid(f2, (4 * h, 4 * w)), 2)
        f16 = tokens_to_grid(self.proj_16(tokens), (h, w))
        return f16, f2
