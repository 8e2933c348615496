"""MUSt3R decoder: a multi-layer memory of keyframe tokens, memory-update and render passes, pointmap head.

Memory update (new images, batch of n): tokens are embedded (`feat_embed_enc_to_dec`), `image2_embed` is added
to every image except the first one when the memory is empty, and at every layer the layer input is appended
to that layer's memory as `norm_y(x)`; each image cross-attends to [old memory, new tokens] minus its own
tokens (unless it is the only image and the memory is empty). After the last layer the stored tokens are
recomputed with the feedback offset `feedback_layer(feedback_norm(input of the last layer))` added to the
inputs of all layers but the last, then `norm_y` per layer.

Render: images cross-attend to the full frozen memory, `image2_embed` added to all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from panst3r_core.model.blocks import CrossAttention, Mlp, SelfAttention, autocast_disabled
from panst3r_core.model.config import DecoderConfig
from panst3r_core.model.rope import RoPE2D, RotaryTables, build_rope

POINTMAP_CHANNELS = 7  # pts3d (3), pts3d_local (3), confidence (1)


@dataclass
class DecoderMemory:
    """The MUSt3R memory: per layer (B, M, D) tokens (norm_y applied) and the image index of every token."""

    values: list[torch.Tensor]
    labels: torch.Tensor  # (B, M) int64
    num_images: int

    @property
    def num_tokens(self) -> int:
        return self.values[0].shape[1]


class DecoderBlock(nn.Module):
    """x += SA(norm1 x) with RoPE; x += CA(norm2 x, memory); x += MLP(norm3 x). `norm_y` prepares memory."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, rope: RoPE2D) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SelfAttention(dim, num_heads, qkv_bias=True, rope=rope)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.norm_y = nn.LayerNorm(dim, eps=1e-6)
        self.cross_attn = CrossAttention(dim, num_heads, qkv_bias=True)
        self.norm3 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def prepare_memory(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm_y(x).to(x.dtype)

    def forward_images(self, xs, poss, keys, values, allowed) -> list[torch.Tensor]:
        """Memory update: per image self-attention, joint cross-attention of all images' queries.

        xs/poss: lists of (B, T_i, D) / (B, T_i, 2) positions or their RotaryTables; allowed (sum T_i, M) bool
        or None."""
        xs = [x + self.attn(self.norm1(x), p) for x, p in zip(xs, poss)]
        query = torch.cat([self.norm2(x) for x in xs], dim=1)
        attended = self.cross_attn.forward_kv(query, keys, values, allowed)
        out = []
        for x, ca in zip(xs, attended.split([x.shape[1] for x in xs], dim=1)):
            x = x + ca
            out.append(x + self.mlp(self.norm3(x)))
        return out

    def forward(self, x, pos, keys, values, allowed, batch: int) -> torch.Tensor:
        """x (B*n, T, D); keys/values (B, heads, M, d); allowed (n*T, M) bool or None."""
        x = x + self.attn(self.norm1(x), pos)
        V, T, D = x.shape
        # The n images of a batch item share one memory: attend with all their queries at once.
        query = self.norm2(x).reshape(batch, (V // batch) * T, D)
        x = x + self.cross_attn.forward_kv(query, keys, values, allowed).reshape(V, T, D)
        return x + self.mlp(self.norm3(x))


class LinearHead(nn.Module):
    """Linear per token, then pixel_shuffle(patch) onto the image grid."""

    def __init__(self, dim: int, output_dim: int, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Linear(dim, output_dim)

    def forward(self, tokens: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
        """tokens (V, T, D) -> (V, H, W, 7)."""
        V, T, _ = tokens.shape
        feat = self.proj(tokens).transpose(1, 2).reshape(V, -1, grid_hw[0], grid_hw[1])
        return F.pixel_shuffle(feat, self.patch_size).permute(0, 2, 3, 1)


class Must3rDecoder(nn.Module):
    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        if cfg.memory_mode not in ("norm_y", "kv"):
            raise ValueError(f"decoder.memory_mode={cfg.memory_mode!r}: choose norm_y or kv")
        if cfg.head != "Linear":
            raise ValueError(f"decoder.head={cfg.head!r}: only Linear is supported")
        self.cfg = cfg
        D = cfg.embed_dim
        self.feat_embed_enc_to_dec = nn.Linear(cfg.enc_embed_dim, D)
        self.image2_embed = nn.Parameter(torch.zeros(1, 1, D))
        rope = build_rope(cfg.pos_embed)
        self.blocks_dec = nn.ModuleList(
            DecoderBlock(D, cfg.num_heads, cfg.mlp_ratio, rope) for _ in range(cfg.depth)
        )
        if cfg.feedback_type == "single_mlp":
            self.feedback_layer: nn.Module | None = Mlp(D, 4 * D, D)
            self.feedback_norm: nn.Module | None = nn.LayerNorm(D)
        elif cfg.feedback_type == "single_linear":
            self.feedback_layer = nn.Linear(D, D)
            self.feedback_norm = nn.LayerNorm(D)
        elif not cfg.feedback_type:
            self.feedback_layer = None
            self.feedback_norm = None
        else:
            raise ValueError(
                f"decoder.feedback_type={cfg.feedback_type!r}: choose single_mlp, single_linear or None"
            )
        self.norm_dec = nn.LayerNorm(D, eps=1e-6)
        self.head_dec = LinearHead(D, cfg.output_dim, cfg.patch_size)

    # ------------------------------------------------------------------ helpers
    def _embed(self, x_enc: torch.Tensor, memory_empty: bool) -> torch.Tensor:
        x = self.feat_embed_enc_to_dec(x_enc)
        image2 = self.image2_embed.to(x.dtype)
        if memory_empty:
            # The first image of the initial batch is the reference frame of the reconstruction.
            return torch.cat((x[:, :1], x[:, 1:] + image2), dim=1)
        return x + image2

    def pointmap_head(self, feats_last: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
        """feats_last (B, n, T, D) (after norm_dec) -> raw pointmaps (B, n, H, W, 7) in float32."""
        B, n, T, D = feats_last.shape
        with autocast_disabled(feats_last.device):
            out = self.head_dec(feats_last.reshape(B * n, T, D).float(), grid_hw)
        return out.reshape(B, n, *out.shape[1:])

    # ------------------------------------------------------------------ passes
    def update_memory(
        self,
        x_enc: list[torch.Tensor],
        pos: list[torch.Tensor],
        grids: list[tuple[int, int]],
        memory: DecoderMemory | None = None,
        return_pointmaps: bool = False,
    ) -> tuple[DecoderMemory, list[torch.Tensor], list[torch.Tensor] | None]:
        """Add n images (in this order) to the memory; images may have different shapes.

        x_enc: n tensors (B, T_i, Denc); pos: n tensors (B, T_i, 2); grids: n (h_i, w_i).
        Returns (new memory, per image the last-layer features after norm_dec (B, T_i, D), per image the raw
        pointmaps (B, H_i, W_i, 7) or None).
        """
        n = len(x_enc)
        first = memory is None
        xs = []
        for i, tokens in enumerate(x_enc):
            x = self.feat_embed_enc_to_dec(tokens)
            # The first image of the initial batch is the reference frame of the reconstruction.
            xs.append(x if (first and i == 0) else x + self.image2_embed[0].to(x.dtype))
        sizes = [x.shape[1] for x in xs]
        total = sum(sizes)
        old_tokens = 0 if memory is None else memory.num_tokens
        allowed = None
        if old_tokens > 0 or n > 1:
            # Do not let an image cross-attend to its own tokens while it is being added.
            own = torch.block_diag(*[torch.ones(t, t, dtype=torch.bool, device=xs[0].device) for t in sizes])
            old = torch.ones(total, old_tokens, dtype=torch.bool, device=xs[0].device)
            allowed = torch.cat((old, ~own), dim=1)
        layer_inputs = []
        tables = [RotaryTables(p) for p in pos]  # one cos/sin table per image for all layers
        for layer, block in enumerate(self.blocks_dec):
            layer_inputs.append(torch.cat(xs, dim=1))
            new_tokens = block.prepare_memory(layer_inputs[-1])
            mem = new_tokens if memory is None else torch.cat((memory.values[layer], new_tokens), dim=1)
            keys, values = block.cross_attn.project_kv(mem)
            xs = block.forward_images(xs, tables, keys, values, allowed)
        feats_last = [self.norm_dec(x) for x in xs]

        if self.feedback_layer is not None:
            offset = self.feedback_layer(self.feedback_norm(layer_inputs[-1]))
            layer_inputs = [inp + offset for inp in layer_inputs[:-1]] + [layer_inputs[-1]]
        values_out = []
        for layer, block in enumerate(self.blocks_dec):
            stored = block.prepare_memory(layer_inputs[layer])
            values_out.append(stored if memory is None else torch.cat((memory.values[layer], stored), dim=1))
        start = 0 if memory is None else memory.num_images
        device = xs[0].device
        new_labels = torch.cat([torch.full((t,), start + i, device=device) for i, t in enumerate(sizes)])
        new_labels = new_labels.expand(xs[0].shape[0], -1)
        labels = new_labels if memory is None else torch.cat((memory.labels, new_labels), dim=1)
        new_memory = DecoderMemory(values_out, labels, start + n)
        pointmaps = None
        if return_pointmaps:
            pointmaps = [self.pointmap_head(f[:, None], g)[:, 0] for f, g in zip(feats_last, grids)]
        return new_memory, feats_last, pointmaps

    def prepare_render(self, memory: DecoderMemory) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per-layer projected keys/values of a frozen memory, reused by every render call."""
        return [block.cross_attn.project_kv(vals) for block, vals in zip(self.blocks_dec, memory.values)]

    def render(
        self,
        x_enc: torch.Tensor,
        pos: torch.Tensor,
        grid_hw: tuple[int, int],
        memory_kv: list[tuple[torch.Tensor, torch.Tensor]],
        return_pointmaps: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Render n images against a frozen memory (from `prepare_render`).

        x_enc (B, n, T, Denc), pos (B, n, T, 2) -> (features after norm_dec (B, n, T, D), raw pointmaps
        (B, n, H, W, 7) float32 or None). Images do not interact: results do not depend on n.
        """
        B, n, T, _ = x_enc.shape
        x = self._embed(x_enc, memory_empty=False)
        D = x.shape[-1]
        x = x.reshape(B * n, T, D)
        tables = RotaryTables(pos.reshape(B * n, T, 2))  # one cos/sin table for all layers
        mem_batch = memory_kv[0][0].shape[0]
        if mem_batch != B:
            if mem_batch != 1:
                raise ValueError(f"memory batch {mem_batch} does not match the image batch {B}")
            memory_kv = [(k.expand(B, -1, -1, -1), v.expand(B, -1, -1, -1)) for k, v in memory_kv]
        for block, (keys, values) in zip(self.blocks_dec, memory_kv):
            x = block(x, tables, keys, values, None, B)
        feats_last = self.norm_dec(x).reshape(B, n, T, D)
        pointmaps = self.pointmap_head(feats_last, grid_hw) if return_pointmaps else None
        return feats_last, pointmaps
