"""The MUSt3R memory for inference: per-layer keys and values of the stored tokens, projected once.

`Must3rDecoder.update_memory` (the training-style update) keeps the stored tokens and, at every update and
layer, concatenates them with the new tokens and projects the *whole* memory to keys and values again: O(K^2)
projection work and two growing copies per layer and update for K keyframes (~28 TFLOP and ~0.1 s of
concatenation for 50 keyframes on an H100). Stored tokens never change once written, so this class projects
them once, into key/value buffers preallocated for every keyframe, and each update attends to the filled
prefix. The results are those of `update_memory` followed by `prepare_render` (same operations; only the
summation order inside attention can differ, by float32 rounding).

Two facts of the update rule keep the per-update work small:
- an image never attends to its own tokens while it is being added (unless it is the only image and the memory
  is empty); so when one image is added to a non-empty memory its keys are exactly the stored prefix, and
  neither a mask nor provisional keys of its own tokens are needed;
- the feedback offset is added to the inputs of every layer but the last, so the last layer's stored tokens
  equal its provisional ones when those were computed.
"""

from __future__ import annotations

import torch

from panst3r_core.model.must3r_decoder import DecoderMemory, Must3rDecoder
from panst3r_core.model.must3r_memory_graphs import MemoryStepGraphs
from panst3r_core.model.prefix_attention import KeyPrefix
from panst3r_core.model.rope import RotaryTables


class KVMemory:
    """Keys/values of a growing MUSt3R memory for `capacity` tokens (the sum over all images to be added).

    Args:
        decoder: the MUSt3R decoder whose blocks read and write this memory.
        capacity: tokens of all images that will be added (e.g. keyframes x tokens per keyframe).
        batch: batch size B of the memory (1 at inference: one scene).
        dtype: dtype of the stored keys/values (the compute dtype: bf16/fp16 under autocast, else float32).
        keep_values: also keep the stored tokens themselves (norm_y applied), for `decoder_memory()`.
        cuda_graphs: on CUDA, replay captured graphs for the single-image updates (see
            `must3r_memory_graphs`); ignored on other devices and with keep_values.
    """

    def __init__(
        self,
        decoder: Must3rDecoder,
        capacity: int,
        batch: int = 1,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        keep_values: bool = False,
        cuda_graphs: bool = False,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"KVMemory capacity={capacity} must be at least one token")
        self.decoder = decoder
        heads = decoder.cfg.num_heads
        shape = (len(decoder.blocks_dec), batch, heads, capacity, decoder.cfg.embed_dim // heads)
        self.keys = torch.empty(shape, dtype=dtype, device=device)
        self.values = torch.empty(shape, dtype=dtype, device=device)
        self.length = 0
        self.image_sizes: list[int] = []
        self.stored: list[list[torch.Tensor]] | None = (
            [[] for _ in decoder.blocks_dec] if keep_values else None
        )
        self.graphs: MemoryStepGraphs | None = None
        if cuda_graphs and self.keys.device.type == "cuda" and not keep_values:
            self.use_step_graphs(capture=True)

    def use_step_graphs(self, capture: bool = True) -> None:
        """Run the single-image updates through `MemoryStepGraphs` (capture=False: the same bucketed,
        masked computation without graphs, e.g. to check it on the CPU). Call before the first `add`."""
        if self.length:
            raise ValueError("use_step_graphs must be called on an empty KVMemory")
        # bucketed updates attend to unfilled rows too (masked out): keep those rows finite
        self.keys.zero_()
        self.values.zero_()
        self.graphs = MemoryStepGraphs(self.capacity, capture=capture)

    @property
    def capacity(self) -> int:
        return self.keys.shape[3]

    @property
    def num_images(self) -> int:
        return len(self.image_sizes)

    def _write(self, layer: int, at: int | torch.Tensor, tokens: torch.Tensor) -> None:
        """Project (B, T, D) memory tokens of `layer` and write their keys/values at token rows
        [at, at + T); `at` is an int, or a device tensor of the T row indices (inside a CUDA graph)."""
        keys, values = self.decoder.blocks_dec[layer].cross_attn.project_kv(tokens)
        if isinstance(at, torch.Tensor):
            self.keys[layer].index_copy_(2, at, keys)
            self.values[layer].index_copy_(2, at, values)
            return
        end = at + tokens.shape[1]
        self.keys[layer, :, :, at:end] = keys
        self.values[layer, :, :, at:end] = values

    def prefix(self, layer: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys, values (B, heads, length, head_dim) of the first `length` tokens of `layer` (views)."""
        return self.keys[layer, :, :, :length], self.values[layer, :, :, :length]

    def add(self, x_enc: list[torch.Tensor], pos: list[torch.Tensor]) -> list[torch.Tensor]:
        """Add n images (in this order) to the memory, as `Must3rDecoder.update_memory` does.

        x_enc: n tensors (B, T_i, Denc) encoder tokens; pos: n tensors (B, T_i, 2) patch positions.
        Returns per image the last-layer features after norm_dec, (B, T_i, D).
        """
        n = len(x_enc)
        sizes = [tokens.shape[1] for tokens in x_enc]
        start = self.length
        end = start + sum(sizes)
        if end > self.capacity:
            raise ValueError(
                f"KVMemory holds {self.capacity} tokens; adding {n} images of {sizes} tokens to {start} "
                "stored ones exceeds it: size the memory for all images that will be added"
            )
        if self.graphs is not None and n == 1 and start > 0:
            feats_last = [self.graphs.add_one(self, x_enc[0], pos[0], start)]
        else:
            attends_new = n > 1 or start == 0
            allowed = None
            if n > 1:
                # Do not let an image cross-attend to its own tokens while it is being added.
                device = x_enc[0].device
                own = torch.block_diag(*[torch.ones(t, t, dtype=torch.bool, device=device) for t in sizes])
                old = torch.ones(end - start, start, dtype=torch.bool, device=device)
                allowed = torch.cat((old, ~own), dim=1)
            feats_last = self.update(x_enc, pos, end if attends_new else start, allowed, start, attends_new)
        self.length = end
        self.image_sizes.extend(sizes)
        return feats_last

    def update(
        self,
        x_enc: list[torch.Tensor],
        pos: list[torch.Tensor],
        key_count: int,
        allowed: torch.Tensor | KeyPrefix | None,
        at: int | torch.Tensor,
        attends_new: bool,
    ) -> list[torch.Tensor]:
        """The decoder pass of one update: the new images attend to the first `key_count` stored keys
        (`allowed`: bool mask broadcastable to (new tokens, key_count), a `KeyPrefix`, or None), and their
        stored tokens are written at `at`. With `attends_new` the provisional keys of the new tokens are
        written first (they are among the attended ones). Does not advance `length`."""
        dec = self.decoder
        n = len(x_enc)
        first = self.num_images == 0
        xs = []
        for i, tokens in enumerate(x_enc):
            x = dec.feat_embed_enc_to_dec(tokens)
            # The first image of the initial batch is the reference frame of the reconstruction.
            xs.append(x if (first and i == 0) else x + dec.image2_embed[0].to(x.dtype))
        tables = [RotaryTables(p) for p in pos]

        layer_inputs = []
        provisional = []
        for layer, block in enumerate(dec.blocks_dec):
            layer_input = xs[0] if n == 1 else torch.cat(xs, dim=1)
            layer_inputs.append(layer_input)
            if attends_new:
                provisional.append(block.prepare_memory(layer_input))
                self._write(layer, at, provisional[-1])
            keys, values = self.prefix(layer, key_count)
            if n == 1:
                xs = [block(xs[0], tables[0], keys, values, allowed, xs[0].shape[0])]
            else:
                xs = block.forward_images(xs, tables, keys, values, allowed)
        feats_last = [dec.norm_dec(x) for x in xs]

        offset = None
        if dec.feedback_layer is not None:
            offset = dec.feedback_layer(dec.feedback_norm(layer_inputs[-1]))
        last = len(dec.blocks_dec) - 1
        for layer, block in enumerate(dec.blocks_dec):
            if attends_new and (layer == last or offset is None):
                stored = provisional[layer]  # no feedback on this layer: already written
            else:
                shifted = (
                    layer_inputs[layer] + offset
                    if (offset is not None and layer < last)
                    else layer_inputs[layer]
                )
                stored = block.prepare_memory(shifted)
                self._write(layer, at, stored)
            if self.stored is not None:
                self.stored[layer].append(stored)
        return feats_last

    def render_kv(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per-layer keys/values of the whole memory (views), as `Must3rDecoder.prepare_render` returns."""
        return [self.prefix(layer, self.length) for layer in range(self.keys.shape[0])]

    def decoder_memory(self) -> DecoderMemory:
        """The stored tokens as a `DecoderMemory` (needs keep_values=True)."""
        if self.stored is None:
            raise ValueError("KVMemory was built with keep_values=False; it holds keys and values only")
        device = self.keys.device
        labels = torch.cat(
            [torch.full((t,), i, device=device, dtype=torch.int64) for i, t in enumerate(self.image_sizes)]
        )
        values = [torch.cat(parts, dim=1) for parts in self.stored]
        return DecoderMemory(values, labels.expand(self.keys.shape[1], -1), self.num_images)
