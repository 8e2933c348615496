"""PanSt3R: MUSt3R encoder/decoder + DINOv2 + panoptic decoder.

`forward` is the training-style pass over batched views (B, N, 3, H, W): MUSt3R memory built with batches
[2, 1, 1, ...] over all views, one render pass for all views, one joint panoptic pass. Keyframe inference
(memory over a subset, non-keyframes from the keyframe queries) lives in `panst3r_core.inference`.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from panst3r_core.model.config import PanSt3RConfig
from panst3r_core.model.dino import DinoEncoder
from panst3r_core.model.must3r_decoder import DecoderMemory, Must3rDecoder
from panst3r_core.model.must3r_encoder import Must3rEncoder
from panst3r_core.model.panoptic_decoder import PanopticDecoder


def memory_batches(num_images: int, init_views: int = 2, batch_views: int = 1) -> list[int]:
    """Sizes of the successive memory updates: [2, 1, 1, ...] summing to num_images ([1] for one image)."""
    if num_images < 1:
        raise ValueError("at least one image is needed to build the MUSt3R memory")
    sizes = [min(init_views, num_images)]
    while sum(sizes) < num_images:
        sizes.append(min(batch_views, num_images - sum(sizes)))
    return sizes


class PanSt3R(nn.Module):
    def __init__(self, config: PanSt3RConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.must3r_encoder = Must3rEncoder(config.encoder)
        self.must3r_decoder = Must3rDecoder(config.decoder)
        self.dino_encoder = DinoEncoder(config.dino)
        self.panoptic_decoder = PanopticDecoder(config.panoptic)

    @property
    def patch_size(self) -> int:
        return self.config.encoder.patch_size

    def build_memory(
        self, enc_tokens: torch.Tensor, enc_pos: torch.Tensor, grid_hw: tuple[int, int]
    ) -> tuple[DecoderMemory, list[torch.Tensor]]:
        """enc_tokens (B, n, T, D), enc_pos (B, n, T, 2) -> memory over the n images in order, and the
        last-layer (norm_dec) features of every update call, (B, n_i, T, D) each."""
        memory = None
        feats = []
        start = 0
        for size in memory_batches(enc_tokens.shape[1]):
            idx = range(start, start + size)
            memory, feats_i, _ = self.must3r_decoder.update_memory(
                [enc_tokens[:, i] for i in idx], [enc_pos[:, i] for i in idx], [grid_hw] * size, memory
            )
            feats.append(torch.stack(feats_i, dim=1))
            start += size
        assert memory is not None
        return memory, feats

    def forward(
        self,
        images: torch.Tensor,
        class_embeddings: torch.Tensor,
        train_must3r: bool = False,
        train_dino: bool = False,
        return_intermediates: bool = False,
    ) -> dict:
        """images (B, N, 3, H, W) in [-1, 1], landscape, H and W multiples of 16; class_embeddings (C, lang)
        L2-normalised.

        Returns pred_logits (B, Q, C), pred_masks (B, N, Q, H/2, W/2) logits, aux_outputs (list of dicts),
        out_queries (Q, B, hidden), pointmaps (B, N, H, W, 7) raw head output [pts3d, pts3d_local, conf];
        with return_intermediates also `intermediates` (tokens, memory, features of every stage).
        With train_must3r / train_dino False (default) those backbones run without gradients (frozen).
        """
        if images.ndim != 5:
            raise ValueError(f"images must have shape (B, N, 3, H, W), got {tuple(images.shape)}")
        B, N, _, H, W = images.shape
        if H > W:
            raise ValueError(
                f"portrait batch {H}x{W}: the training-style forward needs landscape views; transpose them"
            )
        grid = (H // self.patch_size, W // self.patch_size)
        flat = images.flatten(0, 1)
        must3r_ctx = contextlib.nullcontext() if train_must3r else torch.no_grad()
        dino_ctx = contextlib.nullcontext() if train_dino else torch.no_grad()
        with dino_ctx:
            dino = self.dino_encoder(flat)
        with must3r_ctx:
            enc, pos = self.must3r_encoder(flat)
            enc = enc.view(B, N, *enc.shape[1:])
            pos = pos.reshape(B, N, *pos.shape[1:])
            memory, update_feats = self.build_memory(enc, pos, grid)
            dec, pointmaps = self.must3r_decoder.render(
                enc, pos, grid, self.must3r_decoder.prepare_render(memory)
            )
        feats = torch.cat((enc, dec.to(enc.dtype), dino.view(B, N, *dino.shape[1:]).to(enc.dtype)), dim=-1)
        out = self.panoptic_decoder(feats, images, pos, class_embeddings, return_intermediates)
        out["pointmaps"] = pointmaps
        if return_intermediates:
            out["intermediates"].update(
                dino_pixel_values=self.dino_encoder.pixel_values(flat),
                dino_tokens=dino.view(B, N, *dino.shape[1:]),
                enc_tokens=enc,
                enc_pos=pos,
                memory=memory,
                memory_update_feats=update_feats,
                dec_feats=dec,
            )
        return out
