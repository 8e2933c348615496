"""Attention: SDPA by default, xformers' kernel only while its kernel is in scope and the tensors are on CUDA."""

from __future__ import annotations

import torch

from panst3r_core.model import attention_kernels, blocks


def test_sdpa_attention_matches_the_softmax_formula():
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=generator) for _ in range(3))
    allowed = torch.rand(2, 1, 5, 5, generator=generator) > 0.3
    allowed[..., 0] = True
    weights = (q @ k.transpose(-1, -2) / 8**0.5).masked_fill(~allowed, float("-inf")).softmax(-1)
    assert torch.allclose(blocks.attention(q, k, v, allowed), weights @ v, atol=1e-5)


def test_cpu_tensors_never_take_the_xformers_path(monkeypatch):
    def fail(*args):
        raise AssertionError("xformers called for CPU tensors")

    monkeypatch.setattr(
        attention_kernels, "_xformers_ops", type("Ops", (), {"memory_efficient_attention": fail})
    )
    q = torch.randn(1, 2, 4, 8)
    assert torch.equal(blocks.attention(q, q, q), torch.nn.functional.scaled_dot_product_attention(q, q, q))


def test_inputs_no_xformers_operator_takes_fall_back_to_sdpa():
    class Ops:
        @staticmethod
        def memory_efficient_attention(q, k, v):
            raise NotImplementedError("No operator found for `memory_efficient_attention_forward`")

    q = torch.randn(1, 2, 4, 8)
    assert blocks.xformers_attention(Ops, q, q, q) is None


def test_xformers_attention_takes_and_returns_the_heads_first_layout():
    seen = {}

    class Ops:
        @staticmethod
        def memory_efficient_attention(q, k, v):
            seen["shape"] = tuple(q.shape)
            return q * 2

    q = torch.randn(1, 2, 4, 8)  # (B, heads, N, d)
    out = blocks.xformers_attention(Ops, q, q, q)
    assert seen["shape"] == (1, 4, 2, 8) and torch.equal(out, q * 2)
