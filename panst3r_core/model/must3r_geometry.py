"""The MUSt3R half of a PanSt3R as a module of its own: what 3-D pretraining runs (and DDP wraps).

It holds the whole PanSt3R so that checkpoints keep the model's own key names; only the encoder and decoder
take part in its forward.
"""

from __future__ import annotations

import torch
from torch import nn

from panst3r_core.model.panst3r import PanSt3R


class Must3rGeometry(nn.Module):
    def __init__(self, model: PanSt3R) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, images: torch.Tensor, memory_num_views: int, return_memory_pointmaps: bool = True
    ) -> dict[str, torch.Tensor]:
        """images (B, N, 3, H, W) -> pointmaps (B, N, H, W, 7) of the render pass over a memory of the first
        `memory_num_views` views and, with return_memory_pointmaps, memory_pointmaps (B, m, H, W, 7)."""
        out = self.model.reconstruct(images, memory_num_views, return_memory_pointmaps)
        keys = ("pointmaps", "memory_pointmaps") if return_memory_pointmaps else ("pointmaps",)
        return {key: out[key] for key in keys}
