"""Attention to the first `length` keys of a preallocated key/value buffer, `length` read on the device.

A captured CUDA graph of a memory update (`must3r_memory_graphs.py`) has fixed shapes, while the memory it
attends to grows by one keyframe per update. Masking the unfilled rows makes every replay pay for its whole
bucket and sends SDPA to a masked kernel; the fused kernels below instead read the key count from a device
tensor and stop there (as LLM decoders read a KV cache), so a replay does the work of the filled prefix only:

- `flash`: FlashAttention's variable-length forward with `seqused_k` (bf16/fp16 on sm80+);
- `efficient`: the memory-efficient (CUTLASS) forward with `seqlen_k` (bf16/fp16/float32 on CUDA);
- `mask`: SDPA with the unfilled rows masked (any device: what a CPU run and an unsupported GPU do).

They compute the same attention up to summation order. Which fused kernel runs on a device and dtype is decided
once per process by a probe against the masked form on a small case (a kernel that raises or disagrees is not
used); `mask` is the answer where no fused kernel passes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F

PREFIX_KERNELS = ("flash", "efficient", "mask")
_FUSED_DTYPES = (torch.bfloat16, torch.float16)
_PROBE_TOLERANCE = 2e-2  # relative, on bf16 outputs of a case with ~100 keys
_log = logging.getLogger(__name__)
_chosen: dict[tuple[str, torch.dtype], str] = {}


@dataclass(frozen=True)
class KeyPrefix:
    """Attend to keys [0, length) of the given buffer; `length` is a (1,) int32 device tensor, read by the
    kernel when it runs (so a replayed graph sees the value written before the replay)."""

    length: torch.Tensor

    def mask(self, key_count: int) -> torch.Tensor:
        """The same choice as a bool mask (1, key_count), True for the attended rows."""
        rows = torch.arange(key_count, device=self.length.device)
        return (rows < self.length)[None]


def attend_prefix(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, prefix: KeyPrefix, kernel: str | None = None
) -> torch.Tensor:
    """q (B, heads, Nq, d) against the first `prefix.length` rows of k/v (B, heads, M, d) -> (B, heads, Nq, d).

    kernel: one of `PREFIX_KERNELS`, or None for the fastest that passed this device's probe."""
    kernel = kernel or prefix_kernel(q.device, q.dtype)
    if kernel == "flash":
        return _flash(q, k, v, prefix.length)
    if kernel == "efficient":
        return _efficient(q, k, v, prefix.length)
    if kernel != "mask":
        raise ValueError(f"prefix attention kernel {kernel!r}: choose one of {', '.join(PREFIX_KERNELS)}")
    return F.scaled_dot_product_attention(q, k, v, attn_mask=prefix.mask(k.shape[-2]))


def prefix_kernel(device: torch.device, dtype: torch.dtype) -> str:
    """The kernel `attend_prefix` uses on (device, dtype): probed once per process."""
    key = (str(device), dtype)
    if key not in _chosen:
        _chosen[key] = _probe(device, dtype)
    return _chosen[key]


def _probe(device: torch.device, dtype: torch.dtype) -> str:
    if device.type != "cuda" or dtype not in _FUSED_DTYPES:
        return "mask"
    gen = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.randn(1, 2, n, 64, device=device, dtype=dtype, generator=gen) for n in (40, 160, 160))
    prefix = KeyPrefix(torch.tensor([97], dtype=torch.int32, device=device))
    reference = attend_prefix(q, k, v, prefix, "mask").float()
    for kernel in ("flash", "efficient"):
        try:
            out = attend_prefix(q, k, v, prefix, kernel).float()
        except (RuntimeError, NotImplementedError) as exc:  # not built for this GPU, dtype or torch
            _log.info("prefix attention: %s does not run here (%s)", kernel, str(exc).splitlines()[0])
            continue
        error = ((out - reference).norm() / reference.norm()).item()
        if error <= _PROBE_TOLERANCE:
            return kernel
        _log.warning(
            "prefix attention: %s disagrees with the masked form (relative error %.3g)", kernel, error
        )
    return "mask"


def _flash(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """FlashAttention's varlen forward: one sequence per batch item, `length` keys used of each's M rows."""
    batch, heads, queries, dim = q.shape
    keys = k.shape[-2]
    if batch != 1:  # the buffer's rows of two batch items are not one strided run of rows
        return _efficient(q, k, v, length)
    # made by kernels, not host copies: this runs inside CUDA graph captures
    cum_q = torch.arange(0, 2 * queries, queries, dtype=torch.int32, device=q.device)
    cum_k = torch.arange(0, 2 * keys, keys, dtype=torch.int32, device=q.device)
    out = torch.ops.aten._flash_attention_forward(
        q[0].transpose(0, 1),  # (Nq, heads, d): rows and heads as strides of the buffer, no copy
        k[0].transpose(0, 1),
        v[0].transpose(0, 1),
        cum_q,
        cum_k,
        queries,
        keys,
        0.0,
        False,
        False,
        seqused_k=length,
    )[0]
    return out.transpose(0, 1)[None]


def _efficient(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """The memory-efficient forward with per-batch key counts `seqlen_k`; takes (B, N, heads, d) views."""
    batch = q.shape[0]
    out = torch.ops.aten._efficient_attention_forward(
        q.transpose(1, 2),
        k.transpose(1, 2),
        v.transpose(1, 2),
        None,
        None,
        None,
        None,
        None,
        0.0,
        0,
        False,
        seqlen_k=length.expand(batch).contiguous(),
    )[0]
    return out.transpose(1, 2)
