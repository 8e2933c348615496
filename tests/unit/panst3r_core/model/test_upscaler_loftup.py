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


def test_official_guidance_frequencies_are_unchanged_by_the_colour_option():
    from panst3r_core.model.upscaler_loftup import ImplicitFeaturizer

    torch.manual_seed(0)
    official = ImplicitFeaturizer(color_feats=True, n_freqs=6)
    same = ImplicitFeaturizer(color_feats=True, n_freqs=6, color_max_log_freq=10.0)
    same.load_state_dict(official.state_dict())
    image = torch.rand(1, 3, 5, 7) - 0.5
    assert torch.equal(official(image), same(image))


def test_a_low_colour_frequency_makes_the_guidance_smooth_in_colour_but_keeps_positions():
    from panst3r_core.model.upscaler_loftup import ImplicitFeaturizer

    torch.manual_seed(0)
    hashed = ImplicitFeaturizer(color_feats=True, n_freqs=8)
    smooth = ImplicitFeaturizer(color_feats=True, n_freqs=8, color_max_log_freq=2.0)
    smooth.load_state_dict(hashed.state_dict())
    image = torch.full((1, 3, 4, 4), 0.1)
    nudged = image + 1e-3  # a colour change far below what an eye (or a mask) should care about

    def change(featurizer):
        return float((featurizer(nudged) - featurizer(image)).abs().max().detach())

    assert change(hashed) > 0.5  # exp(10) * 1e-3 = 22 radians: the features of a colour are a hash
    assert change(smooth) < 0.02
    positions_only = ImplicitFeaturizer(color_feats=False, n_freqs=8)
    assert positions_only(image).shape[1] == positions_only.out_channels


def test_per_image_guidance_in_training_matches_inference_statistics():
    from panst3r_core.model.config import InputMixerConfig, PanopticDecoderConfig
    from panst3r_core.model.panoptic_decoder import PanopticDecoder

    def decoder(per_image: bool) -> PanopticDecoder:
        torch.manual_seed(0)
        loftup = LoftUpConfig(
            input_dim=16,
            dim=16,
            num_heads=2,
            num_layers=1,
            n_freqs=4,
            per_image_guidance_in_training=per_image,
        )
        config = PanopticDecoderConfig(
            pixel_shuffle=None,
            loftup=loftup,
            input_mixer=InputMixerConfig(in_dim=8, hidden_dim=16, num_heads=2, num_layers=1),
            fpn_dim=[16],
            hidden_dim=16,
            mask_dim=16,
            ff_dim=32,
            num_queries=4,
            num_heads=2,
            dec_layers=1,
        )
        return PanopticDecoder(config).eval()

    torch.manual_seed(1)
    feats = torch.randn(1, 2, 6, 8)
    images = torch.rand(1, 2, 3, 32, 48) * 2 - 1
    images[:, 1] *= 0.3  # a dull view: per-image statistics stretch it, batch statistics do not
    pos = torch.stack(torch.meshgrid(torch.arange(2), torch.arange(3), indexing="ij"), -1).reshape(1, 1, 6, 2)
    pos = pos.expand(1, 2, 6, 2)
    classes = torch.nn.functional.normalize(torch.randn(3, PanopticDecoderConfig().lang_dim), dim=-1)
    with torch.no_grad():
        batch = decoder(False)(feats, images, pos, classes, return_intermediates=True)["intermediates"]
        per_image = decoder(True)(feats, images, pos, classes, return_intermediates=True)["intermediates"]
        model = decoder(True)
        up_in = model.upscaler_input(feats.flatten(0, 1), pos.flatten(0, 1))
        _, inference = model.upscale(up_in, images.flatten(0, 1), (2, 3), per_image=True)
    assert torch.allclose(per_image["mask_feats"].flatten(0, 1), inference, atol=1e-6)
    assert not torch.allclose(batch["mask_feats"], per_image["mask_feats"], atol=1e-3)
