"""DINOv2 on a second stream beside the keyframe memory gives the sequential outputs bit for bit."""

from __future__ import annotations

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("amp", [None, torch.bfloat16])
def test_memory_beside_dino_equals_the_two_in_turn(amp):
    from panst3r_core.inference.engine import (
        InferenceOptions,
        build_memory,
        dino_tokens,
        encode,
        memory_beside_dino,
        prepare_views,
    )
    from panst3r_core.inference.stage_clock import StageClock
    from panst3r_core.model.variants import build_model

    torch.manual_seed(0)
    model = build_model("tiny_v1", device="cuda").eval()
    views = prepare_views(model, list(torch.rand(9, 3, 64, 96, device="cuda") * 2 - 1), max_batch=4)
    opts = InferenceOptions(num_keyframes=7, amp="bf16" if amp else None)
    keyframes = [0, 1, 3, 4, 5, 7, 8]
    dtype = amp or torch.float32
    with torch.no_grad(), torch.autocast("cuda", dtype=amp or torch.float32, enabled=amp is not None):
        sequential = encode(model, views, opts)
        expected = build_memory(model, sequential, keyframes, dtype, opts)
        dino_tokens(model, views, sequential)
        beside = encode(model, views, opts)
        memory, dino = memory_beside_dino(
            model, views, beside, keyframes, dtype, opts, StageClock(torch.device("cuda"))
        )
        dino.join(beside.dino)
    torch.cuda.synchronize()
    assert all(torch.equal(a, b) for a, b in zip(beside.dino, sequential.dino))
    assert torch.equal(memory.keys, expected.keys) and torch.equal(memory.values, expected.values)
