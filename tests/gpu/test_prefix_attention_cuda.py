"""The fused prefix-attention kernels on a GPU: equal to the masked form, and replayable at any length."""

from __future__ import annotations

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def _qkv(batch: int, dtype: torch.dtype):
    gen = torch.Generator(device="cuda").manual_seed(0)
    # a (batch, heads, capacity, d) buffer as the memory keeps it, queried by one image's 768 tokens
    return [
        torch.randn(batch, 12, n, 64, device="cuda", dtype=dtype, generator=gen) for n in (768, 4096, 4096)
    ]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_fused_kernel_is_chosen_for_half_types(dtype):
    from panst3r_core.model.prefix_attention import prefix_kernel

    assert prefix_kernel(torch.device("cuda"), dtype) == "flash"


@pytest.mark.parametrize("batch", [1, 2])  # batch 2 takes the masked form: the fused kernel takes one scene
@pytest.mark.parametrize("length", [2, 768, 2001, 4096])
def test_the_fused_kernel_equals_the_masked_form(batch, length):
    from panst3r_core.model.prefix_attention import KeyPrefix, attend_prefix

    q, k, v = _qkv(batch, torch.bfloat16)
    prefix = KeyPrefix(torch.tensor([length], dtype=torch.int32, device="cuda"))
    reference = attend_prefix(q, k, v, prefix, "mask")
    out = attend_prefix(q, k, v, prefix, "flash")
    assert torch.isfinite(out).all()
    assert _rel(out, reference) < 1e-2


def test_a_captured_graph_replays_at_the_length_written_before():
    from panst3r_core.model.prefix_attention import KeyPrefix, attend_prefix

    q, k, v = _qkv(1, torch.bfloat16)
    length = torch.tensor([768], dtype=torch.int32, device="cuda")
    prefix = KeyPrefix(length)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        attend_prefix(q, k, v, prefix, "flash")  # warm-up before capture
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=side):
            out = attend_prefix(q, k, v, prefix, "flash")
    torch.cuda.current_stream().wait_stream(side)
    for count in (1536, 3000, 4096):
        length.fill_(count)
        graph.replay()
        torch.cuda.synchronize()
        reference = attend_prefix(q, k, v, prefix, "mask")
        assert _rel(out, reference) < 1e-2


def test_a_kernel_chosen_for_cuda_is_the_one_of_the_current_gpu():
    from panst3r_core.model.prefix_attention import choose_prefix_kernel, prefix_kernel

    probed = prefix_kernel(torch.device("cuda", torch.cuda.current_device()), torch.bfloat16)
    choose_prefix_kernel(torch.device("cuda"), torch.bfloat16, "mask")
    assert prefix_kernel(torch.device("cuda", torch.cuda.current_device()), torch.bfloat16) == "mask"
    choose_prefix_kernel(torch.device("cuda"), torch.bfloat16, probed)
