"""v2 input mixer: Linear(concat -> hidden) + RoPE100 pre-norm blocks (LayerNorm eps 1e-5) + LayerNorm."""

from __future__ import annotations

import torch
from torch import nn

from panst3r_core.model.blocks import Block
from panst3r_core.model.config import InputMixerConfig
from panst3r_core.model.rope import RotaryTables, build_rope


class InputMixer(nn.Module):
    def __init__(self, cfg: InputMixerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.in_proj = nn.Linear(cfg.in_dim, cfg.hidden_dim)
        rope = build_rope("RoPE100")
        self.mixer_blk = nn.ModuleList(
            Block(cfg.hidden_dim, cfg.num_heads, cfg.ff_dim_mult, qkv_bias=True, norm_eps=1e-5, rope=rope)
            for _ in range(cfg.num_layers)
        )
        self.mixer_norm = nn.LayerNorm(cfg.hidden_dim)

    def forward(self, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """tokens (B, T, in_dim), pos (B, T, 2) MUSt3R patch positions -> (B, T, hidden_dim)."""
        x = self.in_proj(tokens)
        tables = RotaryTables(pos)  # one cos/sin table for all blocks
        for block in self.mixer_blk:
            x = block(x, tables)
        return self.mixer_norm(x)
