"""2-D RoPE: the one-pass rotation with shared tables equals the per-half reference formula."""

from __future__ import annotations

import pytest
import torch

from panst3r_core.model.blocks import SelfAttention
from panst3r_core.model.rope import RoPE2D, RotaryTables


def reference_rope(tokens: torch.Tensor, positions: torch.Tensor, base: float, f0: float) -> torch.Tensor:
    """CroCo's RoPE2D written literally: per half (y then x) a 1-D rotate-half rotation with tables
    cat(freqs, freqs), freqs cast to the token dtype before cos/sin."""

    def one_dim(x: torch.Tensor, pos1d: torch.Tensor) -> torch.Tensor:
        dim = x.shape[-1]
        inv_freq = f0 / (base ** (torch.arange(0, dim, 2).float() / dim))
        freqs = (pos1d.float()[..., None] * inv_freq).to(x.dtype)
        freqs = torch.cat((freqs, freqs), dim=-1)[:, None]
        half = dim // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * freqs.cos() + rotated * freqs.sin()

    half = tokens.shape[-1] // 2
    y = one_dim(tokens[..., :half], positions[..., 0])
    x = one_dim(tokens[..., half:], positions[..., 1])
    return torch.cat((y, x), dim=-1)


def _positions(batch: int, h: int, w: int) -> torch.Tensor:
    grid = torch.cartesian_prod(torch.arange(h), torch.arange(w))
    return grid[None].expand(batch, -1, -1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("base", "f0"), [(100.0, 1.0), (100.0, 224 / 512)])
def test_rope_equals_the_per_half_reference_bit_for_bit(dtype, base, f0):
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randn(2, 3, 12, 16, generator=generator).to(dtype)
    positions = _positions(2, 3, 4)
    ours = RoPE2D(base, f0)(tokens, positions)
    assert ours.dtype == dtype
    assert torch.equal(ours, reference_rope(tokens, positions, base, f0))


def test_tables_are_built_once_and_shared_by_layers():
    rope = RoPE2D(100.0)
    tables = RotaryTables(_positions(1, 2, 3))
    first = tables.get(rope, 8, torch.float32)
    assert tables.get(rope, 8, torch.float32)[0] is first[0]
    assert tables.get(rope, 8, torch.bfloat16)[0].dtype == torch.bfloat16
    assert tables.get(RoPE2D(10.0), 8, torch.float32)[0] is not first[0]


def test_self_attention_gives_the_same_result_with_positions_or_tables():
    torch.manual_seed(0)
    attn = SelfAttention(32, 2, rope=RoPE2D(100.0))
    x = torch.randn(2, 6, 32)
    positions = _positions(2, 2, 3)
    with torch.no_grad():
        assert torch.equal(attn(x, positions), attn(x, RotaryTables(positions)))
    with pytest.raises(ValueError, match="positions"):
        attn(x)


def test_head_dimension_must_be_divisible_by_four():
    with pytest.raises(ValueError, match="divisible by 4"):
        RoPE2D()(torch.zeros(1, 1, 2, 6), _positions(1, 1, 2))
