"""Attention kernels: xformers is used only where its kernel actually runs; SDPA otherwise."""

from __future__ import annotations

import logging
import sys
import types

import pytest
import torch

from panst3r_core.model import blocks


def _fake_xformers(monkeypatch, kernel):
    package = types.ModuleType("xformers")
    ops = types.ModuleType("xformers.ops")
    ops.memory_efficient_attention = kernel
    package.ops = ops
    monkeypatch.setitem(sys.modules, "xformers", package)
    monkeypatch.setitem(sys.modules, "xformers.ops", ops)
    return ops


def test_an_xformers_build_without_kernels_falls_back_to_sdpa(monkeypatch, caplog):
    def no_kernel(q, k, v):
        raise NotImplementedError("No operator found for `memory_efficient_attention_forward`")

    _fake_xformers(monkeypatch, no_kernel)
    with caplog.at_level(logging.WARNING, logger=blocks.__name__):
        assert blocks._probe_xformers("cpu") is False
    assert "does not run here (No operator found" in caplog.text


def test_a_working_xformers_kernel_is_taken(monkeypatch):
    ops = _fake_xformers(monkeypatch, lambda q, k, v: v)
    assert blocks._probe_xformers("cpu") is ops


def test_without_cuda_or_when_disabled_attention_stays_on_sdpa(monkeypatch):
    _fake_xformers(monkeypatch, lambda q, k, v: v)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert blocks._probe_xformers() is False
    assert blocks.set_memory_efficient_attention(False) is False


def test_sdpa_attention_matches_the_softmax_formula():
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=generator) for _ in range(3))
    allowed = torch.rand(2, 1, 5, 5, generator=generator) > 0.3
    allowed[..., 0] = True
    weights = (q @ k.transpose(-1, -2) / 8**0.5).masked_fill(~allowed, float("-inf")).softmax(-1)
    assert torch.allclose(blocks.attention(q, k, v, allowed), weights @ v, atol=1e-5)


@pytest.fixture(autouse=True)
def _restore_attention_state():
    saved = (blocks._USE_XFORMERS, blocks._XFORMERS_OPS, blocks._XFORMERS_PROBED)
    yield
    blocks._USE_XFORMERS, blocks._XFORMERS_OPS, blocks._XFORMERS_PROBED = saved
