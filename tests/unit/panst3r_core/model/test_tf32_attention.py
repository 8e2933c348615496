"""Float32 attention at TF32 precision: the option's names, its scope, and what it computes (on the CPU here;
tests/gpu/test_tf32_attention_cuda.py measures it against TF32 matmuls on CUDA)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from panst3r_core.model.blocks import attention
from panst3r_core.model.tf32_attention import (
    attend_tf32,
    check_encoder_attention,
    tf32_attention_active,
    tf32_attention_scope,
)


def _qkv(dtype=torch.float32):
    torch.manual_seed(0)
    return tuple(torch.randn(2, 4, 48, 16, dtype=dtype) for _ in range(3))


def test_unknown_name_is_refused_with_the_choices():
    check_encoder_attention("exact")
    check_encoder_attention("tf32")
    with pytest.raises(ValueError, match="exact, tf32"):
        check_encoder_attention("bf16")


def test_scope_is_restored_after_an_error():
    assert not tf32_attention_active()
    with pytest.raises(RuntimeError), tf32_attention_scope():
        assert tf32_attention_active()
        raise RuntimeError("inside")
    assert not tf32_attention_active()


def test_inputs_are_rounded_to_ten_mantissa_bits_and_the_result_is_float32():
    q, k, v = _qkv()
    out = attend_tf32(q, k, v)
    assert out.dtype == torch.float32
    rounded = [t.half().float() for t in (q, k, v)]  # float16 keeps TF32's 10 mantissa bits
    # the product of rounded inputs is what the kernel computes (its own sums and probabilities aside)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(*rounded), atol=2e-3, rtol=0)
    exact = F.scaled_dot_product_attention(q, k, v)
    assert not torch.equal(out, exact)
    assert float((out - exact).norm() / exact.norm()) < 2e-3


def test_blocks_take_it_for_float32_inside_the_scope_only():
    q, k, v = _qkv()
    exact = attention(q, k, v)
    torch.testing.assert_close(exact, F.scaled_dot_product_attention(q, k, v), atol=0, rtol=0)
    with tf32_attention_scope():
        assert torch.equal(attention(q, k, v), attend_tf32(q, k, v))
        bf16 = [t.bfloat16() for t in (q, k, v)]  # other dtypes keep their own attention
        assert torch.equal(attention(*bf16), F.scaled_dot_product_attention(*bf16))
        allowed = torch.ones(48, 48, dtype=torch.bool).tril()
        assert torch.equal(attention(q, k, v, allowed), attend_tf32(q, k, v, allowed))
