"""Panoptic decoder: (optional input mixer) -> upscaler -> multi-view mask transformer."""

from __future__ import annotations

import torch
from torch import nn

from panst3r_core.model.config import PanopticDecoderConfig
from panst3r_core.model.input_mixer import InputMixer
from panst3r_core.model.mask_transformer import MaskTransformer
from panst3r_core.model.upscaler_loftup import LoftUpUpscaler
from panst3r_core.model.upscaler_pixel_shuffle import PixelShuffleUpscaler


class PanopticDecoder(nn.Module):
    def __init__(self, cfg: PanopticDecoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.input_mixer = InputMixer(cfg.input_mixer) if cfg.input_mixer is not None else None
        if cfg.pixel_shuffle is not None:
            self.upscaler: nn.Module = PixelShuffleUpscaler(cfg.pixel_shuffle)
        else:
            assert cfg.loftup is not None
            self.upscaler = LoftUpUpscaler(cfg.loftup)
        self.mask_transformer = MaskTransformer(
            cfg.fpn_dim,
            cfg.hidden_dim,
            cfg.ff_dim,
            cfg.mask_dim,
            cfg.num_queries,
            cfg.num_heads,
            cfg.dec_layers,
            cfg.lang_dim,
            cfg.class_prior,
        )
        upscaler_cfg = cfg.pixel_shuffle if cfg.pixel_shuffle is not None else cfg.loftup
        self.patch_size = upscaler_cfg.patch_size
        if cfg.label_mode == "softmax":
            self.nocls_token = nn.Parameter(torch.randn(cfg.lang_dim))

    def head_class_embeddings(self, class_embeddings: torch.Tensor) -> torch.Tensor:
        """(C, lang) normalised embeddings -> what the class head scores against (+ no-class in softmax mode)."""
        if self.cfg.label_mode == "softmax":
            return torch.cat((class_embeddings, self.nocls_token[None].to(class_embeddings.dtype)), dim=0)
        return class_embeddings

    def upscaler_input(self, feats: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """feats (V, T, concat) -> upscaler input tokens (V, T, C): the input mixer output in v2."""
        return self.input_mixer(feats, pos) if self.input_mixer is not None else feats

    def upscale(
        self, tokens: torch.Tensor, images: torch.Tensor, grid_hw: tuple[int, int], per_image: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (V, T, C), images (V, 3, H, W) -> f16 (V, fpn_dim, h, w), mask features (V, mask_dim, H/2, W/2).

        per_image only matters for LoftUp (guidance min-max statistics per image instead of per batch)."""
        if isinstance(self.upscaler, LoftUpUpscaler):
            return self.upscaler(tokens, images, grid_hw, per_image=per_image)
        return self.upscaler(tokens, grid_hw)

    def masks_from_queries(self, queries: torch.Tensor, mask_feats: torch.Tensor) -> torch.Tensor:
        """Final keyframe queries (Q, B, hidden), mask features (B, n, mask_dim, H2, W2) -> logits (B, n, Q, H2, W2)."""
        mt = self.mask_transformer
        return mt.masks_from_embeddings(mt.mask_embeddings(queries), mask_feats)

    def forward(
        self,
        feats: torch.Tensor,
        images: torch.Tensor,
        pos: torch.Tensor,
        class_embeddings: torch.Tensor,
        return_intermediates: bool = False,
    ) -> dict:
        """Training-style pass over all views jointly (LoftUp min-max over the whole batch, as official,
        unless the config's `per_image_guidance_in_training` asks for inference's per-image statistics).

        feats (B, N, T, concat) = enc | dec | dino, images (B, N, 3, H, W), pos (B, N, T, 2),
        class_embeddings (C, lang) -> dict with pred_logits (B, Q, C'), pred_masks (B, N, Q, H/2, W/2),
        aux_outputs, out_queries (Q, B, hidden).
        """
        B, N, T, _ = feats.shape
        H, W = images.shape[-2:]
        grid = (H // self.patch_size, W // self.patch_size)
        up_in = self.upscaler_input(feats.flatten(0, 1), pos.flatten(0, 1))
        per_image = self.cfg.loftup is not None and self.cfg.loftup.per_image_guidance_in_training
        f16, mask_feats = self.upscale(up_in, images.flatten(0, 1), grid, per_image=per_image)
        f16 = f16.view(B, N, *f16.shape[1:])
        mask_feats = mask_feats.view(B, N, *mask_feats.shape[1:])
        out = self.mask_transformer([f16], [mask_feats], self.head_class_embeddings(class_embeddings))
        out["pred_masks"] = out["pred_masks"][0]
        for aux in out["aux_outputs"]:
            aux["pred_masks"] = aux["pred_masks"][0]
        if return_intermediates:
            out["intermediates"] = {
                "upscaler_in": up_in.view(B, N, T, -1),
                "f16": f16,
                "mask_feats": mask_feats,
            }
        return out
