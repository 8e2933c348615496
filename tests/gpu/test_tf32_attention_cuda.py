"""Float32 attention at TF32 precision on CUDA (`--encoder-attention tf32`): as close to float64 as TF32
matmul attention is, and an encoder batch out of float16's range falls back to exact attention."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _relative(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.double() - ref).norm() / ref.norm())


def test_attention_error_is_that_of_tf32_matmuls():
    from panst3r_core.model.tf32_attention import attend_tf32

    torch.manual_seed(0)
    # the ViT-L encoder's shape: 16 heads of 64 over 768 tokens, activations of a few units
    q, k, v = (3 * torch.randn(4, 16, 768, 64, device="cuda") for _ in range(3))
    ref = F.scaled_dot_product_attention(q.double(), k.double(), v.double())
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:  # attention spelled out as TF32 matmuls: what the encoder's other products already are
        scores = (q @ k.transpose(-1, -2)) / 8.0
        by_tf32_matmuls = scores.softmax(-1) @ v
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    tf32_error = _relative(by_tf32_matmuls, ref)
    ours = _relative(attend_tf32(q, k, v), ref)
    exact = _relative(F.scaled_dot_product_attention(q, k, v), ref)
    assert exact < 1e-5  # the official kernel is IEEE float32
    assert ours < 2 * tf32_error and ours < 5e-3, (ours, tf32_error)


def test_encoder_batch_beyond_float16_range_is_encoded_again_exactly(caplog):
    from panst3r_core.inference.encoder_pass import encoder_tokens
    from panst3r_core.model.variants import build_model

    torch.manual_seed(0)
    encoder = build_model("tiny_v1").must3r_encoder.cuda().eval()
    with torch.no_grad():
        encoder.blocks_enc[0].attn.qkv.weight.mul_(1e6)  # q, k, v far beyond 65504 (after the layer norm)
        images = torch.rand(2, 3, 64, 96, device="cuda") * 2 - 1
        exact, _ = encoder_tokens(encoder, images, attention="exact")
        with caplog.at_level(logging.WARNING):
            tokens, _ = encoder_tokens(encoder, images, attention="tf32")
    assert torch.isfinite(exact).all()
    assert torch.equal(tokens, exact)
    assert "float16's range" in caplog.text


def test_full_size_encoder_moves_little_under_tf32_attention():
    from panst3r_core.inference.encoder_pass import encoder_tokens
    from panst3r_core.model.variants import build_model

    torch.manual_seed(0)
    encoder = build_model("panst3r_v1_512").must3r_encoder.cuda().eval()
    images = torch.rand(4, 3, 384, 512, device="cuda") * 2 - 1
    saved = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")  # TF32 matmuls, the inference default
    try:
        with torch.no_grad():
            exact, _ = encoder_tokens(encoder, images, attention="exact")
            tf32, _ = encoder_tokens(encoder, images, attention="tf32")
    finally:
        torch.set_float32_matmul_precision(saved)
    assert torch.isfinite(tf32).all()
    assert _relative(tf32, exact.double()) < 1e-2
