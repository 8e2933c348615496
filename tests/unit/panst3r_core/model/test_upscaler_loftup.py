"""LoftUp's first convolution stack: group norms in the convolutions' dtype under autocast."""

from __future__ import annotations

import torch

from panst3r_core.model.config import LoftUpConfig
from panst3r_core.model.upscaler_loftup import LoftUpUpscaler


def _upscaler() -> LoftUpUpscaler:
    torch.manual_seed(0)
    upscaler = LoftUpUpscaler(LoftUpConfig(input_dim=32, dim=16, num_heads=2, num_layers=1, n_freqs=4)).eval()
    with torch.no_grad():  # non-trivial affine weights, so that their rounding would show
        for layer in upscaler.first_conv:
            if isinstance(layer, torch.nn.GroupNorm):
                layer.weight.normal_(1.0, 0.3)
                layer.bias.normal_(0.0, 0.3)
    return upscaler


def test_first_conv_in_float32_is_the_module_itself():
    upscaler = _upscaler()
    x = torch.randn(2, upscaler.fourier_feat[1].out_channels, 12, 16)
    with torch.no_grad():
        assert torch.equal(upscaler._first_conv(x), upscaler.first_conv(x))


def test_first_conv_under_bf16_autocast_stays_close_to_float32():
    upscaler = _upscaler()
    x = torch.randn(2, upscaler.fourier_feat[1].out_channels, 12, 16)
    with torch.no_grad():
        reference = upscaler.first_conv(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            ours = upscaler._first_conv(x)
    assert ours.dtype == torch.bfloat16
    error = float((ours.double() - reference.double()).norm() / reference.double().norm())
    assert error < 2e-2
