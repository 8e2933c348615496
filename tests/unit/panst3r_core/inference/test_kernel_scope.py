"""The kernel scope sets TF32 and the attention kernel on CUDA only, and restores both on exit."""

from __future__ import annotations

import pytest
import torch

from panst3r_core.inference.kernel_scope import kernel_scope


def test_on_the_cpu_nothing_changes():
    before = torch.get_float32_matmul_precision()
    with kernel_scope("auto", tf32=True, device=torch.device("cpu")) as kernel:
        assert kernel == "sdpa"
        assert torch.get_float32_matmul_precision() == before


@pytest.mark.parametrize("tf32, inside", [(True, "high"), (False, "highest")])
def test_on_cuda_tf32_is_set_inside_and_restored_after_an_error(monkeypatch, tf32, inside):
    import panst3r_core.inference.kernel_scope as scope

    monkeypatch.setattr(scope, "attention_kernel", lambda name, device: _NoKernel())
    torch.set_float32_matmul_precision("medium")
    try:
        with pytest.raises(RuntimeError, match="inside"):
            with kernel_scope("sdpa", tf32=tf32, device=torch.device("cuda")):
                assert torch.get_float32_matmul_precision() == inside
                raise RuntimeError("inside")
        assert torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision("highest")


class _NoKernel:
    def __enter__(self):
        return "sdpa"

    def __exit__(self, *exc):
        return False
