"""Attention to a key prefix whose length is a device tensor (the memory-update graphs' attention)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from panst3r_core.model.blocks import attention
from panst3r_core.model.prefix_attention import PREFIX_KERNELS, KeyPrefix, attend_prefix, prefix_kernel


def _qkv(keys: int = 48):
    gen = torch.Generator().manual_seed(3)
    return [torch.randn(2, 3, n, 16, generator=gen) for n in (7, keys, keys)]


@pytest.mark.parametrize("length", [1, 20, 48])
def test_masked_prefix_equals_attention_to_the_sliced_keys(length):
    q, k, v = _qkv()
    # rows past the prefix hold values that would change the result if they were attended
    k[:, :, length:] = 50.0
    prefix = KeyPrefix(torch.tensor([length], dtype=torch.int32))
    expected = F.scaled_dot_product_attention(q, k[:, :, :length], v[:, :, :length])
    torch.testing.assert_close(attend_prefix(q, k, v, prefix, "mask"), expected, rtol=1e-6, atol=1e-6)
    # the blocks' attention takes the prefix where it takes a mask
    torch.testing.assert_close(attention(q, k, v, prefix), expected, rtol=1e-6, atol=1e-6)


def test_the_length_is_read_when_the_attention_runs():
    q, k, v = _qkv()
    length = torch.tensor([10], dtype=torch.int32)
    prefix = KeyPrefix(length)
    first = attend_prefix(q, k, v, prefix)
    length.fill_(30)  # what a graph's static input gets before a replay
    second = attend_prefix(q, k, v, prefix)
    torch.testing.assert_close(first, F.scaled_dot_product_attention(q, k[:, :, :10], v[:, :, :10]))
    torch.testing.assert_close(second, F.scaled_dot_product_attention(q, k[:, :, :30], v[:, :, :30]))


def test_cpu_and_float32_use_the_masked_form():
    assert prefix_kernel(torch.device("cpu"), torch.bfloat16) == "mask"
    assert prefix_kernel(torch.device("cpu"), torch.float32) == "mask"


def test_an_unknown_kernel_is_named():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="choose one of " + ", ".join(PREFIX_KERNELS)):
        attend_prefix(q, k, v, KeyPrefix(torch.tensor([4], dtype=torch.int32)), "paged")


def test_a_chosen_kernel_replaces_the_probe_and_unknown_ones_are_named():
    from panst3r_core.model.prefix_attention import choose_prefix_kernel

    device = torch.device("cpu")
    choose_prefix_kernel(device, torch.float16, "flash")
    assert prefix_kernel(device, torch.float16) == "flash"
    # a fused kernel chosen where it cannot run (CPU) still computes through the masked form
    q, k, v = (t.half() for t in _qkv())
    prefix = KeyPrefix(torch.tensor([9], dtype=torch.int32))
    expected = F.scaled_dot_product_attention(q.float(), k[:, :, :9].float(), v[:, :, :9].float())
    torch.testing.assert_close(attend_prefix(q, k, v, prefix).float(), expected, rtol=1e-2, atol=1e-2)
    choose_prefix_kernel(device, torch.float16, "mask")
    with pytest.raises(ValueError, match="choose one of"):
        choose_prefix_kernel(device, torch.float16, "paged")
