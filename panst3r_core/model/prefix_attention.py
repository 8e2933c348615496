"""Attention to the first `length` keys of a preallocated key/value buffer, `length` read on the device.

A captured CUDA graph of a memory update (`must3r_memory_graphs.py`) has fixed shapes, while the memory it
attends to grows by one keyframe per update. Masking the unfilled rows makes every replay pay for its whole
bucket; the fused kernels below instead read the key count from a device tensor and stop there (as LLM
decoders read a KV cache), so a replay does the work of the filled prefix only:

- `flash_segments`: the prefix cut into `splits` equal segments, all attended in one FlashAttention
  variable-length call (each segment a sequence of its own, with the same queries) and merged by their
  log-sum-exps. One image's 768 queries make only 6 query blocks per head, too few to fill a GPU; the
  segments multiply the blocks that run at once (split-KV, as in flash-decoding);
- `flash`: one FlashAttention variable-length call with `seqused_k` (`splits`: FlashAttention's own
  `num_splits`, None for its choice);
- `mask`: SDPA with the unfilled rows masked (any device: what a CPU run and an unsupported GPU do).

They compute the same attention up to summation order (and, for the segments, one more rounding of each
segment's output before the merge). Which kernel runs on a device and dtype is decided once per process by a
probe against the masked form on a small case (a kernel that raises or disagrees is not used); `mask` is the
answer where no fused kernel passes. Fused kernels take bf16/fp16 with batch 1 (one scene's memory).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F

PREFIX_KERNELS = ("flash_segments", "flash", "mask")
SEGMENTS = 4
"""Segments of `flash_segments` (H100, one image's queries against up to 50 keyframes: README "Memory updates")."""
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
    splits: int | None = None,
) -> torch.Tensor:
    """q (B, heads, Nq, d) against the first `prefix.length` rows of k/v (B, heads, M, d) -> (B, heads, Nq, d).

    kernel: one of `PREFIX_KERNELS`, or None for the fastest that passed this device's probe (a fused one
    only for batch 1 and half types); splits: the segments of `flash_segments` (default `SEGMENTS`), or
    FlashAttention's `num_splits` for `flash`."""
    kernel = kernel or prefix_kernel(q.device, q.dtype)
    if kernel not in PREFIX_KERNELS:
        raise ValueError(f"prefix attention kernel {kernel!r}: choose one of {', '.join(PREFIX_KERNELS)}")
    fused = q.shape[0] == 1 and q.dtype in _FUSED_DTYPES
    if kernel == "flash_segments" and fused:
        return _flash_segments(q, k, v, prefix.length, splits or SEGMENTS)
    if kernel == "flash" and fused:
        return _flash(q, k, v, prefix.length, splits)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=prefix.mask(k.shape[-2]))


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
    if kernel not in PREFIX_KERNELS:
        raise ValueError(f"prefix attention kernel {kernel!r}: choose one of {', '.join(PREFIX_KERNELS)}")
    _chosen[_key(device, dtype)] = kernel


def _probe(device: torch.device, dtype: torch.dtype) -> str:
    if device.type != "cuda" or dtype not in _FUSED_DTYPES:
        return "mask"
    gen = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.randn(1, 2, n, 64, device=device, dtype=dtype, generator=gen) for n in (40, 160, 160))
    prefix = KeyPrefix(torch.tensor([97], dtype=torch.int32, device=device))
    reference = attend_prefix(q, k, v, prefix, "mask").float()
    for kernel in PREFIX_KERNELS[:-1]:
        try:
            out = attend_prefix(q, k, v, prefix, kernel).float()
        except (RuntimeError, NotImplementedError, TypeError) as exc:  # not built here, or an older torch
            _log.info("prefix attention: %s does not run here (%s)", kernel, str(exc).splitlines()[0])
            continue
        error = ((out - reference).norm() / reference.norm()).item()
        if error <= _PROBE_TOLERANCE:
            return kernel
        _log.warning(
            "prefix attention: %s disagrees with the masked form (relative error %.3g)", kernel, error
        )
    return "mask"


def _varlen(q, k, v, cum_q, cum_k, max_q, used, num_splits=None) -> tuple[torch.Tensor, torch.Tensor]:
    """FlashAttention's variable-length forward: q (total_q, heads, d), k/v (rows, heads, d) with any row and
    head strides; sequence i has queries cum_q[i]:cum_q[i+1] and keys from cum_k[i], `used[i]` of them.
    Returns (output (total_q, heads, d), log-sum-exp)."""
    extra = {} if num_splits is None else {"num_splits": num_splits}  # an argument of newer torch only
    out = torch.ops.aten._flash_attention_forward(
        q, k, v, cum_q, cum_k, max_q, k.shape[0], 0.0, False, False, seqused_k=used, **extra
    )
    return out[0], out[1]


def _flash(q, k, v, length: torch.Tensor, num_splits: int | None = None) -> torch.Tensor:
    queries = q.shape[2]
    # made by kernels, not host copies: this runs inside CUDA graph captures
    cum_q = torch.arange(0, 2 * queries, queries, dtype=torch.int32, device=q.device)
    cum_k = torch.arange(0, 2 * k.shape[2], k.shape[2], dtype=torch.int32, device=q.device)
    # (N, heads, d) views of the (1, heads, N, d) buffers: rows and heads as strides, no copy
    out, _ = _varlen(
        q[0].transpose(0, 1),
        k[0].transpose(0, 1),
        v[0].transpose(0, 1),
        cum_q,
        cum_k,
        queries,
        length,
        num_splits,
    )
    return out.transpose(0, 1)[None]


def _flash_segments(q, k, v, length: torch.Tensor, segments: int) -> torch.Tensor:
    _, heads, queries, dim = q.shape
    device = q.device
    size = (length + segments - 1) // segments  # (1,) rows per segment, on the device
    starts = torch.arange(segments, dtype=torch.int32, device=device) * size
    used = (length - starts).clamp(min=0).minimum(size).to(torch.int32)
    cum_k = torch.cat((starts, starts[-1:] + size)).to(torch.int32)
    cum_q = torch.arange(0, (segments + 1) * queries, queries, dtype=torch.int32, device=device)
    repeated = q[0].transpose(0, 1).repeat(segments, 1, 1)  # every segment gets all the queries
    out, lse = _varlen(repeated, k[0].transpose(0, 1), v[0].transpose(0, 1), cum_q, cum_k, queries, used)
    # log-sum-exp per (segment, head, query): (heads, total_q) in FlashAttention 2.5+, else per sequence
    if lse.dim() == 2:
        lse = lse.reshape(heads, segments, queries).transpose(0, 1)
    else:
        lse = lse[:, :, :queries]
    filled = used[:, None, None] > 0  # an empty segment weighs nothing, whatever it wrote
    weights = torch.softmax(torch.where(filled, lse, float("-inf")), dim=0).transpose(1, 2)[..., None]
    parts = torch.where(filled[..., None], out.reshape(segments, queries, heads, dim).float(), 0.0)
    merged = (parts * weights).sum(0)
    return merged.to(q.dtype).transpose(0, 1)[None]
