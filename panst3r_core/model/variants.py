"""Named model variants (a registry of config factories) and `build_model`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch

from panst3r_core.model.config import (
    DecoderConfig,
    DinoConfig,
    EncoderConfig,
    InputMixerConfig,
    LoftUpConfig,
    PanopticDecoderConfig,
    PanSt3RConfig,
    PixelShuffleConfig,
)
from panst3r_core.model.panst3r import PanSt3R
from panst3r_core.registry import Registry

VARIANTS: Registry[Callable[[], PanSt3RConfig]] = Registry("model variant")


@VARIANTS.register("panst3r_v1_512")
def panst3r_v1_512() -> PanSt3RConfig:
    """Released v1: ViT-L MUSt3R encoder, ViT-B decoder, DINOv2-L, PixelShuffle upscaler."""
    return PanSt3RConfig()


@VARIANTS.register("panst3r_v2_512")
def panst3r_v2_512() -> PanSt3RConfig:
    """Released v2: InputMixer + LoftUp upscaler, mask_dim 384."""
    return PanSt3RConfig(
        panoptic=PanopticDecoderConfig(
            pixel_shuffle=None, loftup=LoftUpConfig(), input_mixer=InputMixerConfig(), mask_dim=384
        )
    )


def _tiny_backbones() -> dict:
    # The sizes of the parity fixture's tiny checkpoints (constructor strings in its manifest).
    return {
        "encoder": EncoderConfig(embed_dim=64, depth=2, num_heads=2),
        "decoder": DecoderConfig(enc_embed_dim=64, embed_dim=48, depth=3, num_heads=2),
        "dino": DinoConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, model_id="tiny"),
    }


_TINY_HEAD = {
    "fpn_dim": [64],
    "hidden_dim": 64,
    "ff_dim": 128,
    "num_queries": 12,
    "num_heads": 2,
    "dec_layers": 2,
}


@VARIANTS.register("tiny_v1")
def tiny_v1() -> PanSt3RConfig:
    """CPU-test size v1 (concat 64|48|64 = 176, PixelShuffle fp_dim [64, 48, 40, 32])."""
    return PanSt3RConfig(
        **_tiny_backbones(),
        panoptic=PanopticDecoderConfig(
            pixel_shuffle=PixelShuffleConfig(input_dim=176, hidden_dim_factor=2, fp_dim=[64, 48, 40, 32]),
            mask_dim=32,
            **_TINY_HEAD,
        ),
    )


@VARIANTS.register("tiny_v2")
def tiny_v2() -> PanSt3RConfig:
    """CPU-test size v2 (InputMixer 64-d / 2 heads / 2 layers, LoftUp dim 32 / 4 heads / 2 layers)."""
    return PanSt3RConfig(
        **_tiny_backbones(),
        panoptic=PanopticDecoderConfig(
            pixel_shuffle=None,
            input_mixer=InputMixerConfig(in_dim=176, hidden_dim=64, num_heads=2, num_layers=2),
            loftup=LoftUpConfig(input_dim=64, dim=32, num_heads=4, num_layers=2),
            mask_dim=32,
            **_TINY_HEAD,
        ),
    )


# Mask transformer of the small variants: 256-d, 6 layers, 100 queries, 128-d mask features.
_SMALL_HEAD = {
    "fpn_dim": [256],
    "hidden_dim": 256,
    "mask_dim": 128,
    "ff_dim": 1024,
    "num_queries": 100,
    "num_heads": 8,
    "dec_layers": 6,
}


@VARIANTS.register("small_v1")
def small_v1() -> PanSt3RConfig:
    """Mid-size v1 for training from scratch on one GPU (no pretrained weights needed): 384-d MUSt3R encoder
    (8 blocks) and decoder (6 blocks), a DINOv2-S-like branch (384-d, 6 layers), PixelShuffle to 128-d mask
    features, and a 256-d mask transformer with 6 layers and 100 queries (a synthetic room holds 20-50 objects;
    fewer queries are matched more often, which speeds up a short schedule); 58 M parameters."""
    return PanSt3RConfig(
        encoder=EncoderConfig(embed_dim=384, depth=8, num_heads=6),
        decoder=DecoderConfig(enc_embed_dim=384, embed_dim=384, depth=6, num_heads=6),
        dino=DinoConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=6, model_id="small"),
        panoptic=PanopticDecoderConfig(
            pixel_shuffle=PixelShuffleConfig(
                input_dim=1152, hidden_dim_factor=2, fp_dim=[256, 256, 192, 128]
            ),
            **_SMALL_HEAD,
        ),
    )


@VARIANTS.register("small_v2")
def small_v2() -> PanSt3RConfig:
    """small_v1's backbones with the v2 head: a 256-d InputMixer (2 layers) and a LoftUp upscaler (128-d)
    whose image-guided attention gives pixel-sharp mask features. Learns masks from scratch several times
    faster than the PixelShuffle head (a 2-sample overfit on CPU: dice loss 0.11 vs 0.74 after 300 steps at
    tiny size), so it is the variant of the synthetic accuracy run."""
    base = small_v1()
    return PanSt3RConfig(
        encoder=base.encoder,
        decoder=base.decoder,
        dino=base.dino,
        panoptic=PanopticDecoderConfig(
            pixel_shuffle=None,
            input_mixer=InputMixerConfig(in_dim=1152, hidden_dim=256, num_heads=8, num_layers=2),
            loftup=LoftUpConfig(input_dim=256, dim=128, num_heads=4, num_layers=2),
            **_SMALL_HEAD,
        ),
    )


@VARIANTS.register("compact_v2")
def compact_v2() -> PanSt3RConfig:
    """The shipped synthetic model's size (8.0 M parameters, 16 MB in fp16): a 192-d MUSt3R encoder
    (6 blocks) and decoder (3 blocks), a 128-d DINOv2-like branch (4 layers), a 128-d InputMixer, a 64-d
    LoftUp upscaler and a 128-d mask transformer (3 layers, 100 queries). Small enough to pretrain its 3-D
    backbone and then train its head within one lent GPU's half hour, to ship in the repository and to
    fine-tune on two CPU cores."""
    return PanSt3RConfig(
        encoder=EncoderConfig(embed_dim=192, depth=6, num_heads=3),
        decoder=DecoderConfig(enc_embed_dim=192, embed_dim=192, depth=3, num_heads=3),
        dino=DinoConfig(hidden_size=128, num_hidden_layers=4, num_attention_heads=2, model_id="compact"),
        panoptic=PanopticDecoderConfig(
            pixel_shuffle=None,
            input_mixer=InputMixerConfig(in_dim=512, hidden_dim=128, num_heads=4, num_layers=2),
            loftup=LoftUpConfig(input_dim=128, dim=64, num_heads=4, num_layers=2),
            fpn_dim=[128],
            hidden_dim=128,
            mask_dim=64,
            ff_dim=512,
            num_queries=100,
            num_heads=4,
            dec_layers=3,
        ),
    )


@VARIANTS.register("compact_wide_v2")
def compact_wide_v2() -> PanSt3RConfig:
    """compact_v2's MUSt3R backbone (so that its stage-1 weights load) with a wider head for the frozen-backbone
    stage: a 256-d DINOv2-like branch (6 layers), a 256-d InputMixer, a 128-d LoftUp and small_v2's mask
    transformer (256-d, 6 layers, 100 queries). The capacity question of the two-stage recipe: does a
    larger head break the compact head's plateau at the same backbone? Its class head starts at probability 0.01
    (`class_prior`)."""
    base = compact_v2()
    return PanSt3RConfig(
        encoder=base.encoder,
        decoder=base.decoder,
        dino=DinoConfig(hidden_size=256, num_hidden_layers=6, num_attention_heads=4, model_id="compact"),
        panoptic=PanopticDecoderConfig(
            pixel_shuffle=None,
            input_mixer=InputMixerConfig(in_dim=640, hidden_dim=256, num_heads=8, num_layers=2),
            loftup=LoftUpConfig(input_dim=256, dim=128, num_heads=4, num_layers=2),
            class_prior=0.01,
            **_SMALL_HEAD,
        ),
    )


def _compact_with_loftup(**loftup_fields) -> PanSt3RConfig:
    """compact_v2 (same parameter names and shapes apart from LoftUp's guidance convolution) with other
    LoftUp guidance settings and the class prior of a head trained from scratch."""
    config = compact_v2()
    config.panoptic.loftup = replace(config.panoptic.loftup, **loftup_fields)
    config.panoptic.class_prior = 0.01
    return config


@VARIANTS.register("compact_smooth_v2")
def compact_smooth_v2() -> PanSt3RConfig:
    """compact_v2 whose LoftUp guidance is smooth in colour (frequencies up to exp(2) instead of exp(10)) and
    normalised per image in training as in inference: the shipped compact head, trained from scratch, draws
    masks along texture stripes; this asks whether the colour hash is why."""
    return _compact_with_loftup(color_max_log_freq=2.0, per_image_guidance_in_training=True)


@VARIANTS.register("compact_nocolor_v2")
def compact_nocolor_v2() -> PanSt3RConfig:
    """compact_v2 whose LoftUp upsamples from pixel positions alone (no colour guidance): masks cannot follow
    texture, nor snap to colour edges finer than the learned positional interpolation."""
    return _compact_with_loftup(color_feats=False)


def variant_config(name: str) -> PanSt3RConfig:
    return VARIANTS.get(name)()


def build_model(name_or_config: str | PanSt3RConfig, device: str | torch.device | None = None) -> PanSt3R:
    """A PanSt3R with randomly initialised weights; `device='meta'` builds shapes only (no memory)."""
    config = variant_config(name_or_config) if isinstance(name_or_config, str) else name_or_config
    if device is None:
        return PanSt3R(config)
    with torch.device(device):
        return PanSt3R(config)
