"""The kernels an inference call runs with on CUDA: the attention kernel, and TF32 for float32 matmuls.

The official demo sets `torch.backends.cuda.matmul.allow_tf32 = True`, so its float32 parts (the MUSt3R
encoder, the pointmap head) multiply in TF32 on Ampere and later GPUs; `tf32=True` (the default) does the
same, `tf32=False` keeps IEEE float32 matmuls. Both settings are process-wide in PyTorch, so they are set on
entry and restored on exit. Elsewhere (CPU) nothing changes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from panst3r_core.model.attention_kernels import attention_kernel


@contextlib.contextmanager
def kernel_scope(attention: str, tf32: bool, device: torch.device) -> Iterator[str]:
    """Yields the attention kernel that runs (see `attention_kernels.resolve_kernel`)."""
    saved = torch.get_float32_matmul_precision()
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high" if tf32 else "highest")
    try:
        with attention_kernel(attention, device) as kernel:
            yield kernel
    finally:
        torch.set_float32_matmul_precision(saved)
