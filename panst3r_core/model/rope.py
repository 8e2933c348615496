"""2-D rotary position embedding (CroCo's `RoPE2D`, named `RoPE100` in MUSt3R).

The head dimension is split in two halves: the first half is rotated by the patch row (y), the second by the
patch column (x). Inside each half the rotate-half convention is used (NOT interleaved pairs):
`x * cos + rotate_half(x) * sin` with `rotate_half([x1, x2]) = [-x2, x1]` and tables `[freqs, freqs]`.
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


class RoPE2D(nn.Module):
    """Applies 2-D RoPE to (B, heads, N, D) tokens given (B, N, 2) integer (y, x) positions."""

    def __init__(self, base: float = 100.0, f0: float = 1.0) -> None:
        super().__init__()
        self.base = base
        self.f0 = f0

    def _cos_sin(
        self, pos1d: torch.Tensor, dim: int, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """pos1d (B, N) int -> cos, sin (B, 1, N, dim). Same float32 products as the reference's lookup table,
        computed per token so that no host synchronisation (max position) is needed."""
        inv_freq = self.f0 / (self.base ** (torch.arange(0, dim, 2, device=pos1d.device).float() / dim))
        freqs = (pos1d.float()[..., None] * inv_freq).to(dtype)
        freqs = torch.cat((freqs, freqs), dim=-1)[:, None]
        return freqs.cos(), freqs.sin()

    @staticmethod
    def _rotate_half(x: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        return torch.cat((-x[..., half:], x[..., :half]), dim=-1)

    def _apply_1d(self, tokens: torch.Tensor, pos1d: torch.Tensor) -> torch.Tensor:
        cos, sin = self._cos_sin(pos1d, tokens.shape[-1], tokens.dtype)
        return tokens * cos + self._rotate_half(tokens) * sin

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """tokens (B, heads, N, D) with D % 4 == 0; positions (B, N, 2) int (y, x) -> (B, heads, N, D)."""
        if tokens.shape[-1] % 4 != 0:
            raise ValueError(f"RoPE2D needs a head dimension divisible by 4, got {tokens.shape[-1]}")
        half = tokens.shape[-1] // 2
        y_part = self._apply_1d(tokens[..., :half], positions[..., 0])
        x_part = self._apply_1d(tokens[..., half:], positions[..., 1])
        return torch.cat((y_part, x_part), dim=-1)


def build_rope(name: str) -> RoPE2D:
    base, f0 = parse_rope_name(name)
    return RoPE2D(base, f0)
