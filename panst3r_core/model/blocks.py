"""Transformer building blocks shared by the MUSt3R encoder/decoder, the input mixer and LoftUp.

Attention goes through `torch.nn.functional.scaled_dot_product_attention`, or through xformers' memory-efficient
attention for unmasked attention while the `xformers` kernel is in scope (`attention_kernels.py`, CUDA only);
float32 attention at TF32 precision while `tf32_attention.py`'s scope is entered (the encoder's option).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from panst3r_core.model.attention_kernels import active_xformers_ops
from panst3r_core.model.prefix_attention import KeyPrefix, attend_prefix
from panst3r_core.model.rope import RoPE2D, RotaryTables
from panst3r_core.model.tf32_attention import attend_tf32, tf32_attention_active


def autocast_disabled(device: torch.device):
    """A context that runs float32 inside an autocast region (no-op on devices without autocast, e.g. meta)."""
    if device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor | KeyPrefix | None = None
) -> torch.Tensor:
    """q (B, heads, Nq, d), k/v (B, heads, Nk, d); `allowed` bool broadcastable to (B, heads, Nq, Nk),
    True where attention is allowed, or a `KeyPrefix` (the first keys only). Returns (B, heads, Nq, d)."""
    if isinstance(allowed, KeyPrefix):
        return attend_prefix(q, k, v, allowed)
    if q.dtype == torch.float32 and tf32_attention_active():
        return attend_tf32(q, k, v, allowed)
    xops = active_xformers_ops()
    if xops is not None and allowed is None and q.is_cuda:
        out = xformers_attention(xops, q, k, v)
        if out is not None:
            return out
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)


def xformers_attention(xops, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor | None:
    """xformers' attention of (B, heads, N, d) tensors, or None where none of its operators takes them (a
    head size or dtype it was not built for): the caller then uses SDPA."""
    try:
        # xformers takes (B, N, heads, d): the transposes are views, no copies
        out = xops.memory_efficient_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    except NotImplementedError:  # "No operator found for `memory_efficient_attention_forward`"
        return None
    return out.transpose(1, 2)


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2 (CroCo `Mlp`)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, out_dim or in_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused qkv projection and optional 2-D RoPE on q and k."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, rope: RoPE2D | None = None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.rope = rope

    def forward(self, x: torch.Tensor, pos: torch.Tensor | RotaryTables | None = None) -> torch.Tensor:
        """x (B, N, C), pos (B, N, 2) int (y, x) or their `RotaryTables` -> (B, N, C)."""
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if self.rope is not None:
            if pos is None:
                raise ValueError("this attention uses RoPE: pass the token positions")
            tables = pos if isinstance(pos, RotaryTables) else RotaryTables(pos)
            cos, sin = tables.get(self.rope, q.shape[-1], q.dtype)
            q, k = self.rope.rotate(qkv[:2], cos, sin).unbind(0)  # q and k in one pass
        out = attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class CrossAttention(nn.Module):
    """Multi-head cross-attention with separate q/k/v projections (no RoPE)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.projq = nn.Linear(dim, dim, bias=qkv_bias)
        self.projk = nn.Linear(dim, dim, bias=qkv_bias)
        self.projv = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        return x.reshape(B, N, self.num_heads, C // self.num_heads).transpose(1, 2)

    def project_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """memory (B, M, C) -> keys, values (B, heads, M, C/heads); computed once, reused by many queries."""
        return self._heads(self.projk(memory)), self._heads(self.projv(memory))

    def forward_kv(
        self, query: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor | None = None
    ) -> torch.Tensor:
        """query (B, Nq, C) against projected k/v -> (B, Nq, C)."""
        B, Nq, C = query.shape
        out = attention(self._heads(self.projq(query)), k, v, allowed)
        return self.proj(out.transpose(1, 2).reshape(B, Nq, C))

    def forward(self, query: torch.Tensor, memory: torch.Tensor, allowed: torch.Tensor | None = None):
        k, v = self.project_kv(memory)
        return self.forward_kv(query, k, v, allowed)


class Block(nn.Module):
    """Pre-norm ViT block: x += Attn(LN1 x); x += MLP(LN2 x)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
        rope: RoPE2D | None = None,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = SelfAttention(dim, num_heads, qkv_bias=qkv_bias, rope=rope)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, pos: torch.Tensor | RotaryTables | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), pos)
        return x + self.mlp(self.norm2(x))
