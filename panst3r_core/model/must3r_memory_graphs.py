"""CUDA graphs for the single-image updates of the MUSt3R keyframe memory (`KVMemory`).

Building the memory over 50 keyframes runs 49 sequential 12-layer decoder passes on one image's tokens: ~500
small kernels per update, so on a GPU the host's launch overhead sets the pace (~12 ms per update on an H100
for ~2 ms of device work). Every update after the first adds one image and differs from the others only in
how many stored tokens it attends to, so one captured pass per (tokens per image, bucket) is replayed:

- the pass attends to the filled prefix of the first `bucket` rows of the key/value buffers; the memory
  length is a device scalar that the graph reads (`prefix_attention.KeyPrefix`), and the stored tokens are
  written with `index_copy_` at rows computed from it. On a GPU with a fused prefix kernel the attention
  stops at that length; elsewhere the rows at or after it are masked out, with attention weights exactly
  zero (the buffers are zero-initialised, so masked rows are finite). Either way a replay computes what the
  eager prefix attention computes, up to summation order;
- the buckets are half of the capacity and all of it (multiples of 16 rows, the alignment of the attention
  kernels' masks), so where rows are masked they stay below half of the attention work;
- the image's encoder tokens and positions are copied into static input buffers before each replay.

The first update of a bucket runs eagerly on a side stream (this warms up cuBLAS/cuDNN, as capture requires,
and performs that update); the capture follows, and later updates replay it. Weight casts of autocast are
already cached by then (the first, eager update used every weight), so the graph records no casts and adds
no cache entries.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch

from panst3r_core.model.prefix_attention import KeyPrefix, prefix_kernel

if TYPE_CHECKING:
    from panst3r_core.model.must3r_kv_memory import KVMemory

LOG = logging.getLogger(__name__)

# Rows of a mask (and so of an attention bucket) are padded to this multiple by the attention kernels anyway.
_ALIGN = 16


class _StepGraph:
    """One captured single-image update for a fixed token count and bucket."""

    def __init__(self, x_enc: torch.Tensor, pos: torch.Tensor, bucket: int, capture: bool) -> None:
        device = x_enc.device
        self.bucket = bucket
        self.x_enc = torch.empty_like(x_enc)
        self.pos = torch.empty_like(pos)
        self.length = torch.zeros(1, dtype=torch.int32, device=device)
        self.token_rows = torch.arange(x_enc.shape[1], device=device)
        self.graph = torch.cuda.CUDAGraph() if capture else None
        self.output: torch.Tensor | None = None

    def set_inputs(self, x_enc: torch.Tensor, pos: torch.Tensor, start: int) -> None:
        self.x_enc.copy_(x_enc)
        self.pos.copy_(pos)
        self.length.fill_(start)

    def run(self, memory: KVMemory) -> torch.Tensor:
        """The update of the image in the static inputs, against the first `length` stored tokens."""
        prefix = KeyPrefix(self.length)
        rows = self.token_rows + self.length
        return memory.update([self.x_enc], [self.pos], self.bucket, prefix, rows, attends_new=False)[0]


class MemoryStepGraphs:
    """Captured single-image memory updates, per (tokens per image, bucket), for one `KVMemory`.

    capture=False runs the same bucketed, masked computation eagerly (no graphs): what the graphs replay,
    checkable on the CPU."""

    def __init__(self, capacity: int, capture: bool = True) -> None:
        half = min(capacity, -(-(capacity // 2) // _ALIGN) * _ALIGN)
        self.buckets = sorted({half, capacity})
        self.capture = capture
        self._graphs: dict[tuple, _StepGraph] = {}
        self._pool = None

    def _bucket(self, start: int) -> int:
        return next(b for b in self.buckets if b >= start)

    def add_one(self, memory: KVMemory, x_enc: torch.Tensor, pos: torch.Tensor, start: int) -> torch.Tensor:
        """Add one image (x_enc (B, T, Denc), pos (B, T, 2)) to a memory holding `start` > 0 tokens.
        Returns its last-layer features after norm_dec (B, T, D)."""
        bucket = self._bucket(start)
        key = (tuple(x_enc.shape), x_enc.dtype, tuple(pos.shape), bucket)
        step = self._graphs.get(key)
        if step is not None:
            step.set_inputs(x_enc, pos, start)
            if step.graph is None:
                return step.run(memory)
            step.graph.replay()
            assert step.output is not None
            return step.output.clone()  # the static output is overwritten by the next replay

        step = _StepGraph(x_enc, pos, bucket, self.capture)
        self._graphs[key] = step
        step.set_inputs(x_enc, pos, start)
        if step.graph is None:
            return step.run(memory)
        device = x_enc.device
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        prefix_kernel(device, memory.keys.dtype)  # its probe syncs the device: never inside a capture
        # Capture must happen off the default stream. The low-level calls skip what `torch.cuda.graph`
        # adds (a device sync and emptying the device and pinned-host caches, which would make the
        # next scene's host copies page-lock their buffers again).
        side = torch.cuda.Stream(device=device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            features = step.run(memory)  # warm-up, and this update itself
            try:
                step.graph.capture_begin(pool=self._pool, capture_error_mode="thread_local")
                try:
                    step.output = step.run(memory)  # recorded, not executed
                finally:
                    step.graph.capture_end()
            except RuntimeError as exc:  # e.g. a kernel that this driver/library cannot capture
                LOG.warning("memory-update graph capture failed (%s); continuing without CUDA graphs", exc)
                self.capture = False
                step.graph = None
        torch.cuda.current_stream(device).wait_stream(side)
        return features.clone()
