"""MUSt3R encoder (`Dust3rEncoder`): conv16 patch embedding, RoPE ViT blocks, final LayerNorm.

Always runs in float32 (autocast disabled), as the official encoder does.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from panst3r_core.model.blocks import Block, autocast_disabled
from panst3r_core.model.config import EncoderConfig
from panst3r_core.model.rope import RotaryTables, build_rope


def patch_positions(batch: int, grid_h: int, grid_w: int, device: torch.device) -> torch.Tensor:
    """(batch, grid_h*grid_w, 2) int64 (y, x) patch coordinates in row-major order."""
    ys = torch.arange(grid_h, device=device)
    xs = torch.arange(grid_w, device=device)
    grid = torch.cartesian_prod(ys, xs)
    return grid.unsqueeze(0).expand(batch, -1, -1)


class PatchEmbed(nn.Module):
    """Conv2d(3 -> dim, k=s=patch); portrait images are NOT transposed (PatchEmbedDust3R)."""

    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, _, H, W = images.shape
        p = self.patch_size
        if H % p or W % p:
            raise ValueError(f"image size {H}x{W} is not a multiple of the patch size {p}")
        tokens = self.proj(images).flatten(2).transpose(1, 2)
        return tokens, patch_positions(B, H // p, W // p, images.device)


class Must3rEncoder(nn.Module):
    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        if cfg.patch_embed != "PatchEmbedDust3R":
            raise ValueError(f"encoder.patch_embed={cfg.patch_embed!r}: only PatchEmbedDust3R is supported")
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.embed_dim)
        rope = build_rope(cfg.pos_embed)
        self.blocks_enc = nn.ModuleList(
            Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, qkv_bias=True, norm_eps=1e-6, rope=rope)
            for _ in range(cfg.depth)
        )
        self.norm_enc = nn.LayerNorm(cfg.embed_dim, eps=1e-6)

    def forward(self, images: torch.Tensor, autocast: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """images (B, 3, H, W) in [-1, 1] -> tokens (B, H/16*W/16, D) float32, positions (B, T, 2) int64.

        Float32 inside any autocast region, as the official encoder runs; `autocast=True` keeps the caller's
        autocast (bf16 matmuls and attention: faster, not bit-identical; the final norm stays float32)."""
        precision = contextlib.nullcontext() if autocast else autocast_disabled(images.device)
        with precision:
            x, pos = self.patch_embed(images.float())
            tables = RotaryTables(pos)  # one cos/sin table for all blocks
            for block in self.blocks_enc:
                x = block(x, tables)
        with autocast_disabled(images.device):  # float32 tokens either way (CPU autocast would give bf16)
            return self.norm_enc(x.float()), pos
