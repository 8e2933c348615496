"""Which attention kernel runs on CUDA, chosen per inference call.

- `sdpa`: PyTorch's own choice inside `scaled_dot_product_attention` (on Hopper with PyTorch 2.11: cuDNN's
  fused attention for bf16/fp16, the memory-efficient kernel for float32).
- `cudnn`: cuDNN's fused attention first (bf16/fp16 only), then PyTorch's order: for GPUs where PyTorch would
  not pick it (on Hopper it is what `sdpa` runs already).
- `xformers`: `xformers.ops.memory_efficient_attention` for the unmasked attention of the MUSt3R blocks (its
  dispatcher takes FlashAttention-3 on Hopper where the build has it, else FlashAttention-2 or CUTLASS);
  DINOv2 and masked attention stay on SDPA.
- `auto`: `DEFAULT_CUDA_KERNEL` on CUDA, `sdpa` elsewhere.

A kernel that cannot run here (no GPU, no xformers, a build without CUDA kernels) falls back to `sdpa`, never an
error: with one warning when it was asked for by name, quietly when `auto` chose it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a kernel is chosen: the CLI reads `KERNELS` without it
    import torch

KERNELS = ("auto", "sdpa", "cudnn", "xformers")
DEFAULT_CUDA_KERNEL = "xformers"
"""What `auto` runs on CUDA: the fastest measured end to end (xformers 0.0.34 with FlashAttention-3 on an H100:
2 % over SDPA at 100 and 1,000 views, from the render pass; README "Attention kernels")."""

_log = logging.getLogger(__name__)
_xformers_probe: object = None  # None: not probed yet; False: cannot run here; else xformers.ops
_xformers_reason = ""  # why it cannot run here, for the warning
_warned = False
_xformers_ops = None  # xformers.ops while the `xformers` kernel is in scope, read by `blocks.attention`


def check_kernel(name: str) -> None:
    if name not in KERNELS:
        raise ValueError(f"attention kernel {name!r} is not supported; choose one of {', '.join(KERNELS)}")


def active_xformers_ops():
    """xformers.ops while the `xformers` kernel is in scope, else None (then attention runs through SDPA)."""
    return _xformers_ops


def resolve_kernel(name: str, device: torch.device) -> str:
    """The kernel that will run for `name` on `device`: `auto` resolved, xformers replaced by sdpa where it
    cannot run."""
    global _warned
    check_kernel(name)
    if device.type != "cuda":
        return "sdpa"
    kernel = DEFAULT_CUDA_KERNEL if name == "auto" else name
    if kernel != "xformers" or xformers_ops(device) is not False:
        return kernel
    if name != "auto" and not _warned:
        _warned = True
        _log.warning("attention kernel 'xformers' does not run here (%s); using SDPA", _xformers_reason)
    return "sdpa"


@contextlib.contextmanager
def attention_kernel(name: str, device: torch.device) -> Iterator[str]:
    """Run the attention inside the scope with kernel `name` on `device`; yields the kernel that runs."""
    global _xformers_ops
    kernel = resolve_kernel(name, device)
    saved_ops = _xformers_ops
    if kernel == "xformers":
        _xformers_ops = _xformers_probe
    try:
        with _cudnn_first() if kernel == "cudnn" else contextlib.nullcontext():
            yield kernel
    finally:
        _xformers_ops = saved_ops


def _cudnn_first() -> contextlib.AbstractContextManager:
    from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: PLC0415

    order = [
        SDPBackend.CUDNN_ATTENTION,
        SDPBackend.FLASH_ATTENTION,
        SDPBackend.EFFICIENT_ATTENTION,
        SDPBackend.MATH,
    ]
    return sdpa_kernel(order, set_priority=True)


def xformers_ops(device: torch.device):
    """xformers.ops when one small bf16 attention runs with it on `device` (probed once), else False."""
    global _xformers_probe, _xformers_reason
    if _xformers_probe is None:
        import torch  # noqa: PLC0415

        try:
            import xformers.ops as xops  # noqa: PLC0415 - optional GPU extra

            q = torch.zeros(1, 16, 2, 64, device=device, dtype=torch.bfloat16)
            xops.memory_efficient_attention(q, q, q)
            _xformers_probe = xops
        except Exception as exc:  # noqa: BLE001 - missing package, missing kernels, wrong chip, driver errors
            text = str(exc).strip()
            _xformers_reason = text.splitlines()[0] if text else type(exc).__name__
            _xformers_probe = False
    return _xformers_probe
