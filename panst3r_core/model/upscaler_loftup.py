"""v2 upscaler (LoftUp): high-res queries from image Fourier features cross-attend to the low-res tokens.

Quirks kept for parity with the released weights:
- the learned Fourier biases (2, dims, n_freqs) are *reshaped* (not transposed) to (n_freqs, dims);
- the guidance min-max normalisation spans the whole processed batch in the official code, so outputs depend
  on which images are processed together. `per_image=True` normalises each image on its own, which is what
  the official inference does (one image per call) and lets us batch many views with identical results.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from panst3r_core.model.blocks import CrossAttention, Mlp, autocast_disabled
from panst3r_core.model.config import LoftUpConfig
from panst3r_core.model.upscaler_pixel_shuffle import tokens_to_grid

POSITION_MAX_LOG_FREQ = 10.0  # the official guidance's highest frequency, exp(10)


class MinMaxScaler(nn.Module):
    """Per-channel min-max scaling to [-0.5, 0.5] (range clamped at 1e-4)."""

    def forward(self, x: torch.Tensor, per_image: bool = False) -> torch.Tensor:
        """x (B, C, H, W); per_image=False: statistics over the whole batch (official behaviour)."""
        if per_image:
            flat = x.flatten(2)
            low = flat.amin(dim=-1)[..., None, None]
            scale = flat.amax(dim=-1)[..., None, None] - low
        else:
            flat = x.transpose(0, 1).flatten(1)
            low = flat.amin(dim=-1).view(1, -1, 1, 1)
            scale = flat.amax(dim=-1).view(1, -1, 1, 1) - low
        return (x - low) / scale.clamp_min(1e-4) - 0.5


class ImplicitFeaturizer(nn.Module):
    """sin/cos Fourier features of the [-1, 1] pixel grid (and optionally the colours), learned phase biases."""

    def __init__(self, color_feats: bool, n_freqs: int, color_max_log_freq: float | None = None) -> None:
        super().__init__()
        self.color_feats = color_feats
        self.n_freqs = n_freqs
        self.color_max_log_freq = color_max_log_freq
        self.dims = 5 if color_feats else 2
        self.biases = nn.Parameter(torch.randn(2, self.dims, n_freqs))

    def _frequencies(self, device: torch.device) -> torch.Tensor:
        """(1, n_freqs, dims, 1, 1): exp(-2) .. exp(10) per position channel, the colour range per colour."""
        position = torch.exp(torch.linspace(-2, POSITION_MAX_LOG_FREQ, self.n_freqs, device=device))
        freqs = position[:, None].expand(self.n_freqs, self.dims).clone()
        if self.color_feats and self.color_max_log_freq is not None:
            color = torch.exp(torch.linspace(-2, self.color_max_log_freq, self.n_freqs, device=device))
            freqs[:, 2:] = color[:, None]
        return freqs.view(1, self.n_freqs, self.dims, 1, 1)

    @property
    def out_channels(self) -> int:
        return 2 * self.n_freqs * self.dims + (3 if self.color_feats else 0)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image (B, C, h, w) (only its size is used without colour) -> (B, out_channels, h, w)."""
        b, _, h, w = image.shape
        dev = image.device
        grid = torch.stack(
            torch.meshgrid(
                torch.linspace(-1, 1, h, device=dev), torch.linspace(-1, 1, w, device=dev), indexing="ij"
            )
        )
        feats = grid.unsqueeze(0).expand(b, -1, -1, -1).to(image.dtype)
        if self.color_feats:
            feats = torch.cat((feats, image), dim=1)
        feats = feats.unsqueeze(1) * self._frequencies(dev)  # (b, n_freqs, dims, h, w)
        bias_sin = self.biases[0].reshape(1, self.n_freqs, self.dims, 1, 1)
        bias_cos = self.biases[1].reshape(1, self.n_freqs, self.dims, 1, 1)
        sin_feats = torch.sin((feats + bias_sin).reshape(b, -1, h, w))
        cos_feats = torch.cos((feats + bias_cos).reshape(b, -1, h, w))
        parts = [sin_feats, cos_feats] + ([image] if self.color_feats else [])
        return torch.cat(parts, dim=1)


class CrossOnlyBlock(nn.Module):
    """x += CA(norm2 x, norm_y y); x += MLP(norm3 x). No self-attention, no RoPE, no qkv bias."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 1.0) -> None:
        super().__init__()
        self.cross_attn = CrossAttention(dim, num_heads, qkv_bias=False)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm_y = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = x + self.cross_attn(self.norm2(x), self.norm_y(y))
        return x + self.mlp(self.norm3(x))


class LoftUpUpscaler(nn.Module):
    def __init__(self, cfg: LoftUpConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch_embed = nn.Conv2d(cfg.input_dim, cfg.input_dim, kernel_size=1)
        self.lr_pe = ImplicitFeaturizer(color_feats=False, n_freqs=5)
        self.lr_input_proj = nn.Sequential(
            nn.Linear(cfg.input_dim + self.lr_pe.out_channels, cfg.dim), nn.LayerNorm(cfg.dim)
        )
        self.fourier_feat = nn.Sequential(
            MinMaxScaler(), ImplicitFeaturizer(cfg.color_feats, cfg.n_freqs, cfg.color_max_log_freq)
        )
        start = self.fourier_feat[1].out_channels
        self.first_conv = nn.Sequential(
            nn.GroupNorm(1, start),
            nn.Conv2d(start, cfg.dim, kernel_size=3, padding=1),
            nn.GroupNorm(8, cfg.dim),
            nn.ReLU(),
            nn.Conv2d(cfg.dim, cfg.dim, kernel_size=3, padding=1),
            nn.GroupNorm(8, cfg.dim),
            nn.ReLU(),
        )
        self.ca_transformer_blocks = nn.ModuleList(
            CrossOnlyBlock(cfg.dim, cfg.num_heads, mlp_ratio=1.0) for _ in range(cfg.num_layers)
        )
        self.ca_transformer_norm = nn.LayerNorm(cfg.dim)

    def _first_conv(self, x: torch.Tensor) -> torch.Tensor:
        """`first_conv`, with the group norms after the convolutions kept in the convolutions' dtype.

        Autocast runs group_norm in float32: on a (32, 384, 192, 256) half-precision conv output that is a
        2.4 GB float32 copy in, another out and a float32 ReLU, ~10 ms per norm on an H100. The kernel
        accumulates the statistics in float32 from half-precision inputs anyway, and the next convolution
        rounds its input to half precision, so normalising in the input dtype gives the same values up to
        the rounding of the affine weights. Float32 inputs (no autocast, or the Fourier features) take the
        usual path."""
        for layer in self.first_conv:
            if isinstance(layer, nn.GroupNorm) and x.dtype in (torch.bfloat16, torch.float16):
                with autocast_disabled(x.device):
                    x = F.group_norm(
                        x, layer.num_groups, layer.weight.to(x.dtype), layer.bias.to(x.dtype), layer.eps
                    )
            else:
                x = layer(x)
        return x

    def forward(
        self, tokens: torch.Tensor, images: torch.Tensor, grid_hw: tuple[int, int], per_image: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (B, h*w, input_dim), images (B, 3, H, W) landscape guidance in [-1, 1]
        -> f16 (B, input_dim, h, w), mask features (B, dim, H/stride, W/stride)."""
        lr = tokens_to_grid(tokens, grid_hw)
        f16 = self.patch_embed(lr)
        # float32: Fourier frequencies reach exp(10), far beyond half-precision resolution.
        guide = images.float()
        if self.cfg.output_stride != 1:
            guide = F.interpolate(
                guide, scale_factor=1.0 / self.cfg.output_stride, mode="bilinear", align_corners=False
            )
        x = self.fourier_feat[1](self.fourier_feat[0](guide, per_image=per_image))
        x = self._first_conv(x)
        B, C, Hout, Wout = x.shape
        x = x.flatten(2).transpose(1, 2)
        lr_with_pe = torch.cat((lr, self.lr_pe(lr)), dim=1).flatten(2).transpose(1, 2)
        y = self.lr_input_proj(lr_with_pe)
        for block in self.ca_transformer_blocks:
            x = block(x, y)
        x = self.ca_transformer_norm(x)
        return f16, x.transpose(1, 2).reshape(B, C, Hout, Wout)
