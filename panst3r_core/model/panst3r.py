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
        self,
        enc_tokens: torch.Tensor,
        enc_pos: torch.Tensor,
        grid_hw: tuple[int, int],
        return_pointmaps: bool = False,
    ) -> tuple[DecoderMemory, list[torch.Tensor], torch.Tensor | None]:
        """enc_tokens (B, n, T, D), enc_pos (B, n, T, 2) -> memory over the n images in order, the
        last-layer (norm_dec) features of every update call, (B, n_i, T, D) each, and with return_pointmaps
        the memory pass's raw pointmaps (B, n, H, W, 7) (what MUSt3R also supervises in training)."""
        memory = None
        feats, pointmaps = [], []
        start = 0
        for size in memory_batches(enc_tokens.shape[1]):
            idx = range(start, start + size)
            memory, feats_i, pointmaps_i = self.must3r_decoder.update_memory(
                [enc_tokens[:, i] for i in idx],
                [enc_pos[:, i] for i in idx],
                [grid_hw] * size,
                memory,
                return_pointmaps=return_pointmaps,
            )
            feats.append(torch.stack(feats_i, dim=1))
            if pointmaps_i is not None:
                pointmaps.extend(pointmaps_i)
            start += size
        assert memory is not None
        return memory, feats, torch.stack(pointmaps, dim=1) if return_pointmaps else None

    def reconstruct(
        self, images: torch.Tensor, memory_num_views: int | None = None, return_memory_pointmaps: bool = False
    ) -> dict:
        """The MUSt3R half: encode the views, build the memory over the first `memory_num_views` (all by
        default) in updates of [2, 1, 1, ...], render every view against it.

        images (B, N, 3, H, W) landscape -> enc_tokens (B, N, T, Denc), enc_pos (B, N, T, 2), memory,
        memory_update_feats, dec_feats (B, N, T, D), pointmaps (B, N, H, W, 7) raw render-pass output and,
        with return_memory_pointmaps, memory_pointmaps (B, m, H, W, 7) of the memory pass."""
        B, N, _, H, W = images.shape
        grid = (H // self.patch_size, W // self.patch_size)
        memory_views = N if memory_num_views is None else memory_num_views
        if not 1 <= memory_views <= N:
            raise ValueError(f"memory_num_views={memory_num_views} must be within [1, {N}] views")
        enc, pos = self.must3r_encoder(images.flatten(0, 1))
        enc = enc.view(B, N, *enc.shape[1:])
        pos = pos.reshape(B, N, *pos.shape[1:])
        memory, update_feats, memory_pointmaps = self.build_memory(
            enc[:, :memory_views], pos[:, :memory_views], grid, return_pointmaps=return_memory_pointmaps
        )
        dec, pointmaps = self.must3r_decoder.render(
            enc, pos, grid, self.must3r_decoder.prepare_render(memory)
        )
        out = {
            "enc_tokens": enc,
            "enc_pos": pos,
            "memory": memory,
            "memory_update_feats": update_feats,
            "dec_feats": dec,
            "pointmaps": pointmaps,
        }
        if return_memory_pointmaps:
            out["memory_pointmaps"] = memory_pointmaps
        return out

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
        flat = images.flatten(0, 1)
        must3r_ctx = contextlib.nullcontext() if train_must3r else torch.no_grad()
        dino_ctx = contextlib.nullcontext() if train_dino else torch.no_grad()
        with dino_ctx:
            dino = self.dino_encoder(flat)
        with must3r_ctx:
            geometry = self.reconstruct(images)
        enc, pos, dec = geometry["enc_tokens"], geometry["enc_pos"], geometry["dec_feats"]
        feats = torch.cat((enc, dec.to(enc.dtype), dino.view(B, N, *dino.shape[1:]).to(enc.dtype)), dim=-1)
        out = self.panoptic_decoder(feats, images, pos, class_embeddings, return_intermediates)
        out["pointmaps"] = geometry["pointmaps"]
        if return_intermediates:
            out["intermediates"].update(
                dino_pixel_values=self.dino_encoder.pixel_values(flat),
                dino_tokens=dino.view(B, N, *dino.shape[1:]),
                **{key: geometry[key] for key in ("enc_tokens", "enc_pos", "memory", "memory_update_feats")},
                dec_feats=dec,
            )
        return out
