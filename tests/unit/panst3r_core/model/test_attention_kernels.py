"""Choosing the attention kernel: names checked, `auto` resolved, unusable kernels fall back to SDPA."""

from __future__ import annotations

import logging
import sys
import types

import pytest
import torch

from panst3r_core.model import attention_kernels as kernels
from panst3r_core.model.blocks import attention


@pytest.fixture(autouse=True)
def _fresh_probe(monkeypatch):
    monkeypatch.setattr(kernels, "_xformers_probe", None)
    monkeypatch.setattr(kernels, "_xformers_reason", "")
    monkeypatch.setattr(kernels, "_warned", False)
    monkeypatch.setattr(kernels, "_xformers_ops", None)


def _fake_xformers(monkeypatch, kernel):
    package = types.ModuleType("xformers")
    ops = types.ModuleType("xformers.ops")
    ops.memory_efficient_attention = kernel
    package.ops = ops
    monkeypatch.setitem(sys.modules, "xformers", package)
    monkeypatch.setitem(sys.modules, "xformers.ops", ops)
    return ops


def test_unknown_kernel_names_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="flash9.*auto, sdpa, cudnn, xformers"):
        kernels.check_kernel("flash9")


@pytest.mark.parametrize("name", kernels.KERNELS)
def test_every_kernel_runs_sdpa_on_the_cpu_with_the_same_result(name):
    q = torch.randn(2, 3, 7, 8)
    with kernels.attention_kernel(name, torch.device("cpu")) as ran:
        out = attention(q, q, q)
    assert ran == "sdpa"
    assert torch.equal(out, torch.nn.functional.scaled_dot_product_attention(q, q, q))


def test_auto_on_cuda_is_xformers_where_it_runs(monkeypatch):
    ops = _fake_xformers(monkeypatch, lambda q, k, v: v)
    assert kernels.xformers_ops(torch.device("cpu")) is ops  # the probe's attention runs on CUDA on a GPU
    assert kernels.resolve_kernel("auto", torch.device("cuda")) == "xformers"
    assert kernels.resolve_kernel("cudnn", torch.device("cuda")) == "cudnn"


def test_a_build_without_cuda_kernels_falls_back_to_sdpa_with_one_warning(monkeypatch, caplog):
    def no_kernel(q, k, v):
        raise NotImplementedError("No operator found for `memory_efficient_attention_forward`")

    _fake_xformers(monkeypatch, no_kernel)
    cpu = torch.device("cpu")  # the probe's small attention runs on the CPU here, on CUDA on a GPU machine
    with caplog.at_level(logging.WARNING, logger=kernels.__name__):
        assert kernels.xformers_ops(cpu) is False
        assert kernels.xformers_ops(cpu) is False  # probed once
        assert kernels.resolve_kernel("xformers", torch.device("cuda")) == "sdpa"
        assert kernels.resolve_kernel("xformers", torch.device("cuda")) == "sdpa"
    assert caplog.text.count("'xformers' does not run here (No operator found") == 1


def test_auto_falls_back_quietly(monkeypatch, caplog):
    """Without xformers, `auto` is plain SDPA and says nothing; asking for xformers by name warns."""
    monkeypatch.setattr(kernels, "_xformers_probe", False)
    monkeypatch.setattr(kernels, "_xformers_reason", "No module named 'xformers'")
    with caplog.at_level(logging.WARNING, logger=kernels.__name__):
        assert kernels.resolve_kernel("auto", torch.device("cuda")) == "sdpa"
    assert caplog.text == ""
    with caplog.at_level(logging.WARNING, logger=kernels.__name__):
        assert kernels.resolve_kernel("xformers", torch.device("cuda")) == "sdpa"
    assert "'xformers' does not run here (No module named 'xformers')" in caplog.text


def test_a_working_xformers_kernel_is_used_in_scope_and_released_after(monkeypatch):
    ops = _fake_xformers(monkeypatch, lambda q, k, v: v)
    assert kernels.xformers_ops(torch.device("cpu")) is ops
    with kernels.attention_kernel("xformers", torch.device("cuda")) as ran:
        assert ran == "xformers"
        assert kernels.active_xformers_ops() is ops
    assert kernels.active_xformers_ops() is None
