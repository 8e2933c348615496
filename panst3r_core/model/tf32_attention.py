"""Float32 attention at TF32 precision (`--encoder-attention tf32`), for the MUSt3R encoder on CUDA.

The official encoder runs in float32 with TF32 matmuls (the demo's `allow_tf32`), but its attention stays IEEE
float32: PyTorch's memory-efficient kernel on CUDA cores, about 34 TFLOP/s on an H100, over a third of the
encoder's time. TF32 keeps 10 mantissa bits, exactly as many as float16. So rounding q, k and v to float16 and
running the fused float16 kernel (products on tensor cores, sums and softmax in float32, the probabilities
rounded to float16 before they weigh v) is attention at TF32's precision, the precision the encoder's matmuls
already have. What float16 lacks is TF32's range: a value beyond 65504 becomes infinite, which the caller
detects in the encoder's output and answers by running that batch again with exact attention
(`panst3r_core.inference.encoder_pass`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where attention runs: the CLI reads `ENCODER_ATTENTION` without it
    import torch

ENCODER_ATTENTION = ("exact", "tf32")
"""`exact`: IEEE float32 attention, as the official encoder (the default); `tf32`: this module's."""

_active = False


def check_encoder_attention(name: str) -> None:
    if name not in ENCODER_ATTENTION:
        raise ValueError(
            f"encoder attention {name!r} is not supported; choose one of {', '.join(ENCODER_ATTENTION)}"
        )


def tf32_attention_active() -> bool:
    """True inside `tf32_attention_scope()`: float32 attention then runs through `attend_tf32`."""
    return _active


@contextlib.contextmanager
def tf32_attention_scope() -> Iterator[None]:
    """Float32 attention computed by `attend_tf32` inside the scope (restored on exit, errors included)."""
    global _active
    saved = _active
    _active = True
    try:
        yield
    finally:
        _active = saved


def attend_tf32(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor | None = None
) -> torch.Tensor:
    """Attention of float32 (B, heads, N, d) tensors with inputs rounded to 10 mantissa bits; float32 out."""
    import torch  # noqa: PLC0415
    import torch.nn.functional as F  # noqa: PLC0415

    half = torch.float16
    out = F.scaled_dot_product_attention(q.to(half), k.to(half), v.to(half), attn_mask=allowed)
    return out.float()
