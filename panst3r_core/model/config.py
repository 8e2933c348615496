"""Typed size configuration of every PanSt3R component.

Defaults are the released full-size model (v1: PixelShuffle upscaler; v2: InputMixer + LoftUp).
The field names follow the official constructor keyword names so that the constructor strings stored in
official checkpoints map onto these dataclasses one to one (see `panst3r_core.checkpoint.constructor_strings`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Class-embedding width per text model; fixed by the text model, not by the panoptic decoder size.
TEXT_EMBED_DIMS: dict[str, int] = {"siglip": 768, "siglip2": 768, "clip": 512}


@dataclass
class EncoderConfig:
    """MUSt3R encoder (`Dust3rEncoder`): ViT with 2-D RoPE over 16-px patches."""

    img_size: list[int] = field(default_factory=lambda: [512, 512])
    """Training resolution; informational only (RoPE adapts to any multiple of `patch_size`)."""
    patch_size: int = 16
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    patch_embed: str = "PatchEmbedDust3R"
    """Only `PatchEmbedDust3R` (no transpose of portrait images) is supported."""
    pos_embed: str = "RoPE100"
    """`RoPE<base>` or `RoPE<base>_<old>:<new>` (frequency scaling F0 = old/new)."""


@dataclass
class DecoderConfig:
    """MUSt3R decoder (`MUSt3R`): memory-based multi-view decoder and pointmap head."""

    img_size: list[int] = field(default_factory=lambda: [512, 512])
    enc_embed_dim: int = 1024
    patch_size: int = 16
    embed_dim: int = 768
    output_dim: int = 1792
    """Pointmap head width; must be patch_size**2 * 7 (pts3d, pts3d_local, confidence)."""
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    pos_embed: str = "RoPE100"
    landscape_only: bool = True
    head: str = "Linear"
    feedback_type: str | None = "single_mlp"
    """`single_mlp`, `single_linear` or None (no feedback from the last layer into the memory)."""
    memory_mode: str = "norm_y"
    """`norm_y` or `kv`: mathematically identical, no parameter difference."""


@dataclass
class DinoConfig:
    """DINOv2 (`transformers.Dinov2Config` fields) plus the PanSt3R wrapper settings."""

    hidden_size: int = 1024
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    mlp_ratio: int = 4
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-6
    image_size: int = 518
    patch_size: int = 14
    num_channels: int = 3
    qkv_bias: bool = True
    layerscale_value: float = 1.0
    use_swiglu_ffn: bool = False
    model_id: str = "facebook/dinov2-large"
    """Informational: the hub model whose architecture this is (never downloaded)."""
    output_stride: int = 16
    """Images are resized so that DINO yields the same token grid as a stride-16 patch embedding."""
    landscape_only: bool = True


@dataclass
class PixelShuffleConfig:
    """v1 upscaler: MLPs + pixel_shuffle(2) three times from stride 16 to stride 2."""

    input_dim: int = 2816
    patch_size: int = 16
    hidden_dim_factor: float = 4.0
    fp_dim: list[int] = field(default_factory=lambda: [768, 512, 384, 256])
    """Widths at strides 16, 8, 4, 2; the last one is the mask-feature width."""


@dataclass
class InputMixerConfig:
    """v2 input mixer: Linear projection + RoPE transformer blocks over the concatenated tokens."""

    img_size: list[int] = field(default_factory=lambda: [512, 512])
    patch_size: int = 16
    in_dim: int = 2816
    hidden_dim: int = 768
    num_heads: int = 12
    num_layers: int = 3
    ff_dim_mult: float = 4.0


@dataclass
class LoftUpConfig:
    """v2 upscaler: LoftUp cross-attention from high-res image Fourier features to low-res tokens."""

    input_dim: int = 768
    dim: int = 384
    output_stride: int = 2
    patch_size: int = 16
    color_feats: bool = True
    n_freqs: int = 20
    num_heads: int = 4
    num_layers: int = 2
    lr_pe_type: str = "sine"
    """Only `sine` is supported (the `learnable` branch of the official code is unused and inconsistent)."""
    color_max_log_freq: float | None = None
    """The colour channels' Fourier frequencies run from exp(-2) to exp(this); None = the positions' range,
    up to exp(10) (official). At exp(10) a colour's features are a hash of its exact value: a pretrained
    LoftUp copes, one trained from scratch learns masks that follow texture (stripes, checkers). Our
    synthetic variants lower it so that the guidance varies smoothly with colour."""
    per_image_guidance_in_training: bool = False
    """Min-max normalise each training image's guidance on its own, as inference does. The official training
    normalises over the whole batch, so a view's guidance differs between training and inference."""


@dataclass
class PanopticDecoderConfig:
    """Panoptic decoder: optional input mixer, upscaler (exactly one of the two), mask transformer."""

    pixel_shuffle: PixelShuffleConfig | None = field(default_factory=PixelShuffleConfig)
    loftup: LoftUpConfig | None = None
    input_mixer: InputMixerConfig | None = None
    fpn_dim: list[int] = field(default_factory=lambda: [768])
    hidden_dim: int = 768
    mask_dim: int = 256
    ff_dim: int = 2048
    num_queries: int = 200
    num_heads: int = 8
    dec_layers: int = 6
    text_encoder: str = "siglip"
    fixed_vocab: bool = True
    label_mode: str = "sigmoid"
    """`sigmoid` (released models) or `softmax` (adds a learned no-class token)."""
    two_stage: bool = False
    landscape_only: bool = True
    deep_supervision: bool = True
    class_prior: float | None = None
    """Starting probability of every class for every query (RetinaNet's prior for focal losses): adds a learned
    logit bias initialised to log(p / (1 - p)), so that a new head does not spend its first few hundred steps
    on the focal loss of Q x C probabilities that start at 0.5 (cosine logits start near 0). None = official
    (no bias, no such state-dict key)."""

    @property
    def lang_dim(self) -> int:
        if self.text_encoder not in TEXT_EMBED_DIMS:
            known = ", ".join(TEXT_EMBED_DIMS)
            raise ValueError(f"panoptic.text_encoder={self.text_encoder!r} is unknown; choose from {known}")
        return TEXT_EMBED_DIMS[self.text_encoder]


@dataclass
class PanSt3RConfig:
    """The whole model."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    dino: DinoConfig = field(default_factory=DinoConfig)
    panoptic: PanopticDecoderConfig = field(default_factory=PanopticDecoderConfig)

    def validate(self) -> None:
        """Raise ValueError for size combinations the architecture cannot build."""
        enc, dec, dino, pan = self.encoder, self.decoder, self.dino, self.panoptic
        if pan.class_prior is not None and not 0.0 < pan.class_prior < 1.0:
            raise ValueError(
                f"panoptic.class_prior={pan.class_prior} must lie strictly between 0 and 1 (or be null)"
            )
        if enc.embed_dim != dec.enc_embed_dim:
            raise ValueError(
                f"decoder.enc_embed_dim={dec.enc_embed_dim} must equal encoder.embed_dim={enc.embed_dim}"
            )
        if dec.output_dim != dec.patch_size**2 * 7:
            raise ValueError(
                f"decoder.output_dim={dec.output_dim} must be patch_size**2*7={dec.patch_size**2 * 7}"
            )
        if enc.patch_size != dec.patch_size or dino.output_stride != enc.patch_size:
            raise ValueError("encoder.patch_size, decoder.patch_size and dino.output_stride must be equal")
        if (pan.pixel_shuffle is None) == (pan.loftup is None):
            raise ValueError("panoptic: set exactly one of pixel_shuffle (v1) or loftup (v2)")
        if pan.two_stage:
            raise ValueError("panoptic.two_stage=True is not supported (no released model uses it)")
        concat_dim = enc.embed_dim + dec.embed_dim + dino.hidden_size
        if pan.input_mixer is not None:
            if pan.input_mixer.in_dim != concat_dim:
                raise ValueError(
                    f"panoptic.input_mixer.in_dim={pan.input_mixer.in_dim} must equal the concatenated "
                    f"feature width encoder+decoder+dino={concat_dim}"
                )
            upscaler_in = pan.input_mixer.hidden_dim
        else:
            upscaler_in = concat_dim
        if pan.pixel_shuffle is not None:
            ps = pan.pixel_shuffle
            if ps.input_dim != upscaler_in:
                raise ValueError(
                    f"panoptic.pixel_shuffle.input_dim={ps.input_dim} must equal {upscaler_in} "
                    "(the concatenated encoder+decoder+dino width, or the input mixer width)"
                )
            if len(ps.fp_dim) != 4:
                raise ValueError(f"panoptic.pixel_shuffle.fp_dim={ps.fp_dim} must have 4 entries")
            fpn_width, mask_width = ps.fp_dim[0], ps.fp_dim[3]
        else:
            lu = pan.loftup
            assert lu is not None
            if lu.input_dim != upscaler_in:
                raise ValueError(f"panoptic.loftup.input_dim={lu.input_dim} must equal {upscaler_in}")
            if lu.lr_pe_type != "sine":
                raise ValueError(f"panoptic.loftup.lr_pe_type={lu.lr_pe_type!r}: only 'sine' is supported")
            if lu.dim % 8 != 0:
                raise ValueError(f"panoptic.loftup.dim={lu.dim} must be a multiple of 8 (GroupNorm(8, dim))")
            fpn_width, mask_width = lu.input_dim, lu.dim
        if pan.fpn_dim != [fpn_width]:
            raise ValueError(
                f"panoptic.fpn_dim={pan.fpn_dim} must be [{fpn_width}] (the upscaler's FPN width)"
            )
        if pan.mask_dim != mask_width:
            raise ValueError(
                f"panoptic.mask_dim={pan.mask_dim} must equal the mask-feature width {mask_width}"
            )
        if pan.label_mode not in ("sigmoid", "softmax"):
            raise ValueError(f"panoptic.label_mode={pan.label_mode!r}: choose sigmoid or softmax")
        pan.lang_dim  # noqa: B018 - validates text_encoder
