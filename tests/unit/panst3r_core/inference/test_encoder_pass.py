"""The encoder pass of inference: which attention runs where, the range fallback, and compilation."""

from __future__ import annotations

import logging

import pytest
import torch

from panst3r_core.inference import encoder_pass
from panst3r_core.inference.encoder_pass import compiled, encoder_tokens, resolve_encoder_attention
from panst3r_core.model.variants import build_model


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return build_model("tiny_v1").must3r_encoder.eval()


def _images(batch=2):
    torch.manual_seed(1)
    return torch.rand(batch, 3, 64, 96) * 2 - 1


@pytest.mark.parametrize(
    "device, autocast, runs",
    [("cuda", False, "tf32"), ("cuda", True, "exact"), ("cpu", False, "exact")],
)
def test_tf32_runs_only_for_the_float32_encoder_on_cuda(device, autocast, runs):
    assert resolve_encoder_attention("tf32", torch.device(device), autocast) == runs
    assert resolve_encoder_attention("exact", torch.device(device), autocast) == "exact"
    with pytest.raises(ValueError, match="choose one of"):
        resolve_encoder_attention("fast", torch.device(device), autocast)


@torch.no_grad()
def test_tf32_attention_moves_the_tokens_a_little(encoder):
    exact, positions = encoder_tokens(encoder, _images(), attention="exact")
    tf32, tf32_positions = encoder_tokens(encoder, _images(), attention="tf32")
    assert torch.equal(positions, tf32_positions)
    assert not torch.equal(exact, tf32)
    assert float((tf32 - exact).norm() / exact.norm()) < 5e-3


@torch.no_grad()
def test_a_batch_beyond_float16_range_is_encoded_again_exactly(encoder, caplog, monkeypatch):
    monkeypatch.setattr(encoder_pass, "_warned_range", False)
    scaled = build_model("tiny_v1").must3r_encoder.eval()
    scaled.load_state_dict(encoder.state_dict())
    scaled.blocks_enc[0].attn.qkv.weight.mul_(1e6)  # q, k, v far beyond 65504 (after the layer norm)
    exact, _ = encoder_tokens(scaled, _images(), attention="exact")
    with caplog.at_level(logging.WARNING, logger=encoder_pass.__name__):
        tokens, _ = encoder_tokens(scaled, _images(), attention="tf32")
    assert torch.isfinite(exact).all()
    assert torch.equal(tokens, exact)
    assert "float16's range" in caplog.text and "2 views" in caplog.text


def test_an_encoder_is_compiled_once_per_process(encoder):
    assert compiled(encoder) is compiled(encoder)
    other = build_model("tiny_v1").must3r_encoder
    assert compiled(other) is not compiled(encoder)


@pytest.mark.slow
@torch.no_grad()
def test_compiled_encoder_gives_the_eager_tokens(encoder):
    eager, positions = encoder_tokens(encoder, _images(3))
    tokens, compiled_positions = encoder_tokens(compiled(encoder), _images(3))
    assert torch.equal(positions, compiled_positions)
    torch.testing.assert_close(tokens, eager, atol=1e-5, rtol=1e-5)
