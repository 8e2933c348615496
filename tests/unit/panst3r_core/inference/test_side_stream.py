"""DINOv2 beside the keyframe memory: off CUDA the two run in turn, and the outputs are the sequential ones."""

from __future__ import annotations

import torch

from panst3r_core.inference.engine import (
    InferenceOptions,
    build_memory,
    dino_tokens,
    encode,
    memory_beside_dino,
    prepare_views,
    run_inference,
)
from panst3r_core.inference.side_stream import SideStream
from panst3r_core.inference.stage_clock import StageClock
from panst3r_core.model.variants import build_model


def test_off_cuda_there_is_no_stream_and_joining_is_a_no_op():
    side = SideStream(torch.device("cpu"), high_priority=True)
    assert side.stream is None
    with side.running():
        made = torch.ones(3) * 2
    side.join([made])
    assert made.tolist() == [2.0, 2.0, 2.0]


def test_memory_beside_dino_equals_the_two_in_turn():
    torch.manual_seed(0)
    model = build_model("tiny_v1").eval()
    views = prepare_views(model, list(torch.rand(5, 3, 64, 96) * 2 - 1), max_batch=2)
    opts = InferenceOptions(num_keyframes=3)
    keyframes = [0, 2, 4]
    sequential = encode(model, views, opts)
    expected_memory = build_memory(model, sequential, keyframes, torch.float32, opts)
    dino_tokens(model, views, sequential)

    beside = encode(model, views, opts)
    clock = StageClock(torch.device("cpu"))
    memory, dino = memory_beside_dino(model, views, beside, keyframes, torch.float32, opts, clock)
    dino.join(beside.dino)
    assert all(torch.equal(a, b) for a, b in zip(beside.dino, sequential.dino))
    assert torch.equal(memory.keys, expected_memory.keys) and torch.equal(
        memory.values, expected_memory.values
    )
    assert "dino" in clock.seconds()


def test_the_clock_reports_dino_and_the_wait_for_it():
    torch.manual_seed(0)
    model = build_model("tiny_v1").eval()
    result = run_inference(model, list(torch.rand(4, 3, 64, 96) * 2 - 1), torch.randn(3, 768))
    stages = result.clock.seconds()
    assert {"encoder", "memory", "render", "dino", "dino_wait", "geometry"} <= set(stages)
    assert all(seconds >= 0 for seconds in stages.values())


def test_an_included_clock_adds_its_stages():
    outer, beside = StageClock(torch.device("cpu")), StageClock(torch.device("cpu"))
    beside.mark("side")
    outer.mark("main")
    outer.include(beside)
    assert set(outer.seconds()) == {"main", "side"}
