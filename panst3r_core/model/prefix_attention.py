"""Attention to the first `length` keys of a preallocated key/value buffer, `length` read on the device.

A captured CUDA graph of a memory update (`must3r_memory_graphs.py`) has fixed shapes, while the memory it
attends to grows by one keyframe per update. Masking the unfilled rows makes every replay pay for its whole
bucket; FlashAttention's variable-length forward instead reads the key count from a device tensor
(`seqused_k`) and stops there, as LLM decoders read a KV cache, so a replay does the work of the filled prefix
only. Kernels:

- `flash`: that call, on bf16/fp16 with batch 1 (one scene's memory);
- `mask`: SDPA with the unfilled rows masked (any device: what a CPU run and an unsupported GPU do).

They compute the same attention up to summation order. Which one runs on a device and dtype is decided once
per process by a probe against the masked form on a small case (a kernel that raises or disagrees is not used).
On an H100 a 50-keyframe memory builds in 0.321 s instead of 0.364 s (README "Memory updates"). Two variants
were timed and dropped: the memory-efficient kernel's `seqlen_k` (three times slower, and its output was not the
prefix attention), and split-KV segments of the prefix in one call merged by log-sum-exp (no faster than one
call).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F

PREFIX_KERNELS = ("flash", "mask")
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
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    prefix: KeyPrefix,
    kernel: str | None = None,
) -> torch.Tensor:
    """q (B, heads, Nq, d) against the first `prefix.length` rows of k/v (B, heads, M, d) -> (B, heads, Nq, d).

    kernel: one of `PREFIX_KERNELS`, or None for the one that passed this device's probe (`flash` runs for
    batch 1 and half types only; other inputs take the masked form)."""
    kernel = kernel or prefix_kernel(q.device, q.dtype)
    _check_kernel(kernel)
    if kernel == "flash" and q.shape[0] == 1 and q.dtype in _FUSED_DTYPES:
        return _flash(q, k, v, prefix.length)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=prefix.mask(k.shape[-2]))


def _check_kernel(kernel: str) -> None:
    if kernel not in PREFIX_KERNELS:
        raise ValueError(f"prefix attention kernel {kernel!r}: choose one of {', '.join(PREFIX_KERNELS)}")


def _key(device: torch.device, dtype: torch.dtype) -> tuple[str, torch.dtype]:
    """`cuda` and `cuda:0` name one GPU when 0 is the current one: one entry for both."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return str(device), dtype


def prefix_kernel(device: torch.device, dtype: torch.dtype) -> str:
    """The kernel `attend_prefix` uses on (device, dtype): probed once per process."""
    key = _key(device, dtype)
    if key not in _chosen:
        _chosen[key] = _probe(device, dtype)
    return _chosen[key]


def choose_prefix_kernel(device: torch.device, dtype: torch.dtype, kernel: str) -> None:
    """Use `kernel` on (device, dtype) from now on in this process instead of the probe's choice (to time or
    compare the kernels)."""
    _check_kernel(kernel)
    _chosen[_key(device, dtype)] = kernel


def _probe(device: torch.device, dtype: torch.dtype) -> str:
    if device.type != "cuda" or dtype not in _FUSED_DTYPES:
        return "mask"
    gen = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.randn(1, 2, n, 64, device=device, dtype=dtype, generator=gen) for n in (40, 160, 160))
    prefix = KeyPrefix(torch.tensor([97], dtype=torch.int32, device=device))
    reference = attend_prefix(q, k, v, prefix, "mask").float()
    try:
        out = attend_prefix(q, k, v, prefix, "flash").float()
    except (RuntimeError, NotImplementedError, TypeError) as exc:  # not built here, or an older torch
        _log.info("prefix attention: flash does not run here (%s)", str(exc).splitlines()[0])
        return "mask"
    error = ((out - reference).norm() / reference.norm()).item()
    if error <= _PROBE_TOLERANCE:
        return "flash"
    _log.warning("prefix attention: flash disagrees with the masked form (relative error %.3g)", error)
    return "mask"


def _flash(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """FlashAttention's variable-length forward, one sequence: the queries against `length` of the rows."""
    queries, rows = q.shape[2], k.shape[2]
    # made by kernels, not host copies: this runs inside CUDA graph captures
    cum_q = torch.arange(0, 2 * queries, queries, dtype=torch.int32, device=q.device)
    cum_k = torch.arange(0, 2 * rows, rows, dtype=torch.int32, device=q.device)
    # (N, heads, d) views of the (1, heads, N, d) buffers: rows and heads as strides, no copy
    out = torch.ops.aten._flash_attention_forward(
        q[0].transpose(0, 1),
        k[0].transpose(0, 1),
        v[0].transpose(0, 1),
        cum_q,
        cum_k,
        queries,
        rows,
        0.0,
        False,
        False,
        seqused_k=length,
    )[0]
    return out.transpose(0, 1)[None]
