"""Multi-view mask transformer (Mask2Former decoder adapted by PanSt3R).

Post-norm layers in the order cross-attention -> self-attention -> FFN; masked cross-attention whose mask is
the previous prediction resized to the 16-px grid (`sigmoid < 0.5` blocks; rows that block everything are
unblocked); one prediction before layer 0 and one after every layer. Every view's tokens share one sine
position encoding (no view embedding) plus the single level embedding; the query PE is added to q only.

Views are passed in shape groups: a list of (B, n_g, C, h_g, w_g) stacks (one group when all views share a
shape). Attention runs jointly over all views' tokens.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sine_position_encoding(h: int, w: int, num_feats: int, device, temperature: float = 10000.0):
    """DETR 2-D sine PE (normalised, scale 2*pi): y half then x half, sin/cos interleaved -> (h*w, 2*num_feats)."""
    ones = torch.ones(1, h, w, device=device)
    y_embed = ones.cumsum(1, dtype=torch.float32)
    x_embed = ones.cumsum(2, dtype=torch.float32)
    eps, scale = 1e-6, 2 * math.pi
    y_embed = y_embed / (y_embed[:, -1:, :] + eps) * scale
    x_embed = x_embed / (x_embed[:, :, -1:] + eps) * scale
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=device)
    dim_t = temperature ** (2 * (dim_t // 2) / num_feats)
    pos_x = x_embed[..., None] / dim_t
    pos_y = y_embed[..., None] / dim_t
    pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
    pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
    return torch.cat((pos_y, pos_x), dim=3)[0].flatten(0, 1)


class SelfAttentionLayer(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, num_heads, dropout=0.0)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tgt: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
        q = k = tgt + query_pos
        out = self.self_attn(q, k, value=tgt, need_weights=False)[0]
        return self.norm(tgt + out)


class CrossAttentionLayer(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(dim, num_heads, dropout=0.0)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tgt, memory, blocked, pos, query_pos) -> torch.Tensor:
        out = self.multihead_attn(
            query=tgt + query_pos, key=memory + pos, value=memory, attn_mask=blocked, need_weights=False
        )[0]
        return self.norm(tgt + out)


class FFNLayer(nn.Module):
    def __init__(self, dim: int, ff_dim: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(dim, ff_dim)
        self.linear2 = nn.Linear(ff_dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tgt: torch.Tensor) -> torch.Tensor:
        return self.norm(tgt + self.linear2(F.relu(self.linear1(tgt))))


class MLP(nn.Module):
    """Linear layers with ReLU between them (none after the last)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1)
        outs = [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims, outs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class MaskTransformer(nn.Module):
    def __init__(
        self,
        fpn_dim: list[int],
        hidden_dim: int,
        ff_dim: int,
        mask_dim: int,
        num_queries: int,
        num_heads: int,
        dec_layers: int,
        lang_dim: int,
        class_prior: float | None = None,
    ) -> None:
        super().__init__()
        if len(fpn_dim) != 1:
            raise ValueError(f"fpn_dim={fpn_dim}: only one feature level is supported")
        self.num_heads = num_heads
        self.num_layers = dec_layers
        self.hidden_dim = hidden_dim
        self.self_attn_layers = nn.ModuleList(
            SelfAttentionLayer(hidden_dim, num_heads) for _ in range(dec_layers)
        )
        self.cross_attn_layers = nn.ModuleList(
            CrossAttentionLayer(hidden_dim, num_heads) for _ in range(dec_layers)
        )
        self.ffn_layers = nn.ModuleList(FFNLayer(hidden_dim, ff_dim) for _ in range(dec_layers))
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.query_feat = nn.Embedding(num_queries, hidden_dim)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.level_embed = nn.Embedding(len(fpn_dim), hidden_dim)
        self.input_proj = nn.ModuleList(
            nn.Sequential() if d == hidden_dim else nn.Conv2d(d, hidden_dim, kernel_size=1) for d in fpn_dim
        )
        self.lang_embed = nn.Linear(hidden_dim, lang_dim)
        self.cls_logit_scale = nn.Parameter(torch.ones([]))
        # Our variants only (official checkpoints have no such key): a learned logit bias that starts every
        # class of every query at probability `class_prior`.
        self.cls_logit_bias = (
            nn.Parameter(torch.tensor(math.log(class_prior / (1 - class_prior))))
            if class_prior is not None
            else None
        )
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)
        for layers in (self.self_attn_layers, self.cross_attn_layers, self.ffn_layers):
            for p in layers.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)

    # ------------------------------------------------------------------ heads
    def class_logits(self, queries: torch.Tensor, class_embeddings: torch.Tensor) -> torch.Tensor:
        """queries (Q, B, hidden), class_embeddings (C, lang) L2-normalised -> logits (B, Q, C)."""
        lang = self.lang_embed(self.decoder_norm(queries).transpose(0, 1))
        lang = lang / (lang.norm(dim=-1, keepdim=True) + 1e-7)
        logits = self.cls_logit_scale.exp() * lang @ class_embeddings.to(lang.dtype).T
        return logits if self.cls_logit_bias is None else logits + self.cls_logit_bias

    def mask_embeddings(self, queries: torch.Tensor) -> torch.Tensor:
        """queries (Q, B, hidden) -> (B, Q, mask_dim)."""
        return self.mask_embed(self.decoder_norm(queries).transpose(0, 1))

    @staticmethod
    def masks_from_embeddings(mask_embed: torch.Tensor, mask_feats: torch.Tensor) -> torch.Tensor:
        """mask_embed (B, Q, mask_dim), mask_feats (B, n, mask_dim, H2, W2) -> logits (B, n, Q, H2, W2)."""
        return torch.einsum("bqc,bnchw->bnqhw", mask_embed, mask_feats)

    def _predict(self, queries, mask_groups, class_embeddings, grids):
        logits = self.class_logits(queries, class_embeddings)
        embed = self.mask_embeddings(queries)
        masks = [self.masks_from_embeddings(embed, mf) for mf in mask_groups]
        blocked = []
        for group_masks, (h, w) in zip(masks, grids):
            B, n, Q, H2, W2 = group_masks.shape
            small = F.interpolate(
                group_masks.flatten(0, 1), size=(h, w), mode="bilinear", align_corners=False
            )
            blocked.append(small.view(B, n, Q, h * w).permute(0, 2, 1, 3).flatten(2))
        blocked = torch.cat(blocked, dim=2).detach()
        blocked = blocked.sigmoid().unsqueeze(1).repeat(1, self.num_heads, 1, 1).flatten(0, 1) < 0.5
        return logits, masks, blocked

    def forward(
        self, fpn_groups: list[torch.Tensor], mask_groups: list[torch.Tensor], class_embeddings: torch.Tensor
    ) -> dict:
        """fpn_groups: list of (B, n_g, fpn_dim, h_g, w_g); mask_groups: list of (B, n_g, mask_dim, 2h_g, 2w_g);
        class_embeddings (C, lang).

        Returns pred_logits (B, Q, C), pred_masks (list per group of (B, n_g, Q, 2h_g, 2w_g)), aux_outputs
        (the dec_layers earlier predictions), out_queries (Q, B, hidden) before decoder_norm, detached.
        """
        src, pos, grids = [], [], []
        for feats in fpn_groups:
            B, n, C, h, w = feats.shape
            proj = self.input_proj[0](feats.flatten(0, 1))
            tokens = proj.view(B, n, -1, h * w).permute(1, 3, 0, 2).reshape(n * h * w, B, -1)
            src.append(tokens + self.level_embed.weight[0][None, None])
            pe = sine_position_encoding(h, w, self.hidden_dim // 2, feats.device).to(tokens.dtype)
            pos.append(pe[:, None].expand(-1, B, -1).repeat(n, 1, 1))
            grids.append((h, w))
        src_all = torch.cat(src, dim=0)
        pos_all = torch.cat(pos, dim=0)
        B = src_all.shape[1]
        query_pos = self.query_embed.weight.unsqueeze(1).repeat(1, B, 1)
        output = self.query_feat.weight.unsqueeze(1).repeat(1, B, 1)

        predictions = [self._predict(output, mask_groups, class_embeddings, grids)]
        for i in range(self.num_layers):
            blocked = predictions[-1][2]
            blocked = blocked & ~blocked.all(dim=-1, keepdim=True)
            output = self.cross_attn_layers[i](output, src_all, blocked, pos_all, query_pos)
            output = self.self_attn_layers[i](output, query_pos)
            output = self.ffn_layers[i](output)
            predictions.append(self._predict(output, mask_groups, class_embeddings, grids))
        return {
            "pred_logits": predictions[-1][0],
            "pred_masks": predictions[-1][1],
            "aux_outputs": [{"pred_logits": p[0], "pred_masks": p[1]} for p in predictions[:-1]],
            "out_queries": output.detach(),
        }
