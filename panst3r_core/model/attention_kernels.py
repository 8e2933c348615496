"""Which attention kernel runs on CUDA, chosen per inference call.

- `sdpa`: PyTorch's own choice inside `scaled_dot_product_attention` (FlashAttention-2 for bf16/fp16, the
  memory-efficient kernel for float32).
- `cudnn`: cuDNN's fused attention first (bf16/fp16 only), then PyTorch's order.
- `fa3`: SDPA's flash backend routed to FlashAttention-3 (Hopper, bf16/fp16) through PyTorch's flash-attention
  registry, with the `flash_attn_3` operators of an installed xformers build. Every SDPA call in the scope
  uses it: the MUSt3R blocks and the DINOv2 branch alike.
- `xformers`: `xformers.ops.memory_efficient_attention` in the MUSt3R blocks (its own dispatcher: FA3 where
  built, else FlashAttention-2 or its CUTLASS kernel); DINOv2 stays on SDPA.
- `auto`: `DEFAULT_CUDA_KERNEL` on CUDA, `sdpa` elsewhere.

Float32 attention (the official float32 encoder) has no flash or cuDNN kernel: SDPA takes its
memory-efficient kernel there under every choice. A kernel that cannot run here (no GPU, no Hopper chip, an
xformers build without CUDA kernels) falls back to `sdpa`, never an error: with one warning when it was asked
for by name, quietly when `auto` chose it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a kernel is chosen: the CLI reads `KERNELS` without it
    import torch

KERNELS = ("auto", "sdpa", "cudnn", "fa3", "xformers")
DEFAULT_CUDA_KERNEL = "sdpa"
"""What `auto` runs on CUDA: the fastest kernel measured end to end (README "Inference at scale")."""

_log = logging.getLogger(__name__)
_probed: dict[str, object] = {}  # kernel name -> its module (or True) when usable, False when not
_unusable_reasons: dict[str, str] = {}
_warned: set[str] = set()
_xformers_ops = None  # xformers.ops while the `xformers` kernel is in scope, read by `blocks.attention`


def check_kernel(name: str) -> None:
    if name not in KERNELS:
        raise ValueError(f"attention kernel {name!r} is not supported; choose one of {', '.join(KERNELS)}")


def active_xformers_ops():
    """xformers.ops while the `xformers` kernel is in scope, else None (then attention runs through SDPA)."""
    return _xformers_ops


def resolve_kernel(name: str, device: torch.device) -> str:
    """The kernel that will run for `name` on `device`: `auto` resolved, unusable kernels replaced by sdpa."""
    check_kernel(name)
    if device.type != "cuda":
        return "sdpa"
    asked = name
    if name == "auto":
        name = DEFAULT_CUDA_KERNEL
    if name in ("sdpa", "cudnn") or _usable(name, device):
        return name
    if asked != "auto" and name not in _warned:
        _warned.add(name)
        _log.warning("attention kernel %r does not run here (%s); using SDPA", name, _unusable_reasons[name])
    return "sdpa"


@contextlib.contextmanager
def attention_kernel(name: str, device: torch.device) -> Iterator[str]:
    """Run the attention inside the scope with kernel `name` on `device`; yields the kernel that runs."""
    global _xformers_ops
    kernel = resolve_kernel(name, device)
    saved_ops = _xformers_ops
    with contextlib.ExitStack() as stack:
        if kernel == "cudnn":
            from torch.nn.attention import SDPBackend  # noqa: PLC0415

            stack.enter_context(_sdpa_priority(SDPBackend.CUDNN_ATTENTION))
        elif kernel == "fa3":
            stack.enter_context(_flash_attention_3())
        elif kernel == "xformers":
            _xformers_ops = _probed["xformers"]
        try:
            yield kernel
        finally:
            _xformers_ops = saved_ops


def _sdpa_priority(first) -> contextlib.AbstractContextManager:
    from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: PLC0415

    order = [
        first,
        SDPBackend.FLASH_ATTENTION,
        SDPBackend.EFFICIENT_ATTENTION,
        SDPBackend.CUDNN_ATTENTION,
        SDPBackend.MATH,
    ]
    return sdpa_kernel(list(dict.fromkeys(order)), set_priority=True)


@contextlib.contextmanager
def _flash_attention_3() -> Iterator[None]:
    from torch.nn import attention  # noqa: PLC0415

    attention.activate_flash_attention_impl("FA3")
    try:
        yield
    finally:
        attention.restore_flash_attention_impl()


def _usable(name: str, device: torch.device) -> bool:
    if name not in _probed:
        _probed[name] = _probe(name, device)
    return _probed[name] is not False


def _probe(name: str, device: torch.device):
    """The kernel's module (or True) when one small bf16 attention runs with it on `device`, else False."""
    import torch  # noqa: PLC0415

    try:
        module = _load(name, device)
        q = torch.zeros(1, 2, 16, 64, device=device, dtype=torch.bfloat16)
        if name == "xformers":
            module.memory_efficient_attention(q, q, q)
        else:
            with _flash_attention_3():
                torch.nn.functional.scaled_dot_product_attention(q, q, q)
        return module
    except Exception as exc:  # noqa: BLE001 - missing package, missing kernels, wrong chip, driver errors
        text = str(exc).strip()
        _unusable_reasons[name] = text.splitlines()[0] if text else type(exc).__name__
        return False


def _load(name: str, device: torch.device):
    import torch  # noqa: PLC0415

    if name == "xformers":
        import xformers.ops as xops  # noqa: PLC0415 - optional GPU extra

        return xops
    if torch.cuda.get_device_capability(device)[0] != 9:
        raise RuntimeError("FlashAttention-3 needs a Hopper GPU (compute capability 9.0)")
    import xformers.ops.fmha.flash3 as flash3  # noqa: PLC0415 - loads the flash_attn_3 operators

    if flash3._C_flashattention3 is None:
        raise RuntimeError("the installed xformers has no FlashAttention-3 build")
    from torch.nn.attention import _fa3  # noqa: PLC0415 - PyTorch's FA3 registration for SDPA

    if not hasattr(_fa3, "_fa3_scaled_dot_product_flash_attention_forward_impl_default"):
        # earlier PyTorch prototypes route only fp8 attention to FA3; bf16 would silently stay on FA2
        raise RuntimeError(f"PyTorch {torch.__version__} routes only fp8 SDPA to FlashAttention-3")
    torch.nn.attention.register_flash_attention_impl(
        "FA3", register_fn=lambda: _fa3.register_flash_attention_fa3(module_path=flash3.__name__)
    )
    return True
