"""2-D rotary position embedding (CroCo's `RoPE2D`, named `RoPE100` in MUSt3R).

The head dimension is split in two halves: the first half is rotated by the patch row (y), the second by the
patch column (x). Inside each half the rotate-half convention is used (NOT interleaved pairs):
`x * cos + rotate_half(x) * sin` with `rotate_half([x1, x2]) = [-x2, x1]` and tables `[freqs, freqs]`.

Both halves are rotated in one pass with full-width tables `[cos_y, cos_y, cos_x, cos_x]` (quarters of the head
dimension), which gives the same per-element products as rotating each half on its own. The tables depend only
on the positions, so `RotaryTables` builds them once and every layer (and both q and k) reuses them: the
official per-call recomputation is ~30 small kernels per attention, the bulk of the kernel launches of a
keyframe-memory update on a GPU.
"""

from __future__ import annotations

import torch
from torch import nn


def parse_rope_name(name: str) -> tuple[float, float]:
    """`RoPE100` -> (base 100, F0 1); `RoPE100_224:512` -> (100, 224/512)."""
    if not name.startswith("RoPE"):
        raise ValueError(f"pos_embed={name!r} is not supported; use RoPE<base>, e.g. RoPE100")
    f0 = 1.0
    body = name[len("RoPE") :]
    if "_" in body:
        body, resolutions = body.split("_", 1)
        old, new = resolutions.split(":")
        f0 = float(old) / float(new)
    return float(body), f0


class RotaryTables:
    """The cos/sin factors of one set of (B, N, 2) integer (y, x) positions, built on first use per
    (RoPE base, F0, head dimension, dtype) and then shared by q, k and every layer that sees these positions."""

    def __init__(self, positions: torch.Tensor) -> None:
        self.positions = positions
        self._tables: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def get(self, rope: RoPE2D, head_dim: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin of shape (B, 1, N, head_dim) in `dtype`."""
        key = (rope.base, rope.f0, head_dim, dtype)
        if key not in self._tables:
            self._tables[key] = rope.cos_sin(self.positions, head_dim, dtype)
        return self._tables[key]


class RoPE2D(nn.Module):
    """Applies 2-D RoPE to (B, heads, N, D) tokens given (B, N, 2) integer (y, x) positions."""

    def __init__(self, base: float = 100.0, f0: float = 1.0) -> None:
        super().__init__()
        self.base = base
        self.f0 = f0

    def cos_sin(
        self, positions: torch.Tensor, head_dim: int, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """positions (B, N, 2) int (y, x) -> cos, sin (B, 1, N, head_dim) with quarters [y, y, x, x].

        Same float32 products as the reference's lookup table (cast to `dtype` before cos/sin, as the
        reference does), computed per token so that no host synchronisation (max position) is needed."""
        if head_dim % 4 != 0:
            raise ValueError(f"RoPE2D needs a head dimension divisible by 4, got {head_dim}")
        half = head_dim // 2
        inv_freq = self.f0 / (self.base ** (torch.arange(0, half, 2, device=positions.device).float() / half))
        freqs = (positions.float()[..., None] * inv_freq).to(dtype)  # (B, N, 2, head_dim / 4)
        # [f_y, f_y, f_x, f_x]: each half holds its 1-D table twice (rotate-half convention)
        freqs = freqs[..., None, :].expand(*freqs.shape[:-1], 2, freqs.shape[-1]).flatten(-3)
        freqs = freqs[:, None]
        return freqs.cos(), freqs.sin()

    @staticmethod
    def rotate(tokens: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """tokens (..., N, D) (e.g. q and k stacked as (2, B, heads, N, D)), cos/sin broadcastable to them."""
        quarters = tokens.unflatten(-1, (2, 2, tokens.shape[-1] // 4))  # (half, part, D/4)
        # rotate_half inside each half: [p0, p1] -> [-p1, p0]
        rotated = torch.stack((-quarters[..., 1, :], quarters[..., 0, :]), dim=-2).flatten(-3)
        return tokens * cos + rotated * sin

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor | RotaryTables) -> torch.Tensor:
        """tokens (B, heads, N, D) with D % 4 == 0; positions (B, N, 2) int (y, x) or their `RotaryTables`
        -> (B, heads, N, D)."""
        tables = positions if isinstance(positions, RotaryTables) else RotaryTables(positions)
        cos, sin = tables.get(self, tokens.shape[-1], tokens.dtype)
        return self.rotate(tokens, cos, sin)


def build_rope(name: str) -> RoPE2D:
    base, f0 = parse_rope_name(name)
    return RoPE2D(base, f0)
