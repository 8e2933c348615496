"""Streamed post-processing (views in chunks) gives exactly the whole-scene results."""

from __future__ import annotations

import pytest
import torch

from panst3r_core.postprocess import POSTPROCESSORS
from panst3r_core.postprocess.streaming import streaming_postprocessor


def _scene(seed: int, num_queries: int = 12, num_classes: int = 5):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(num_queries, num_classes, generator=generator) * 3
    shapes = [(32, 48), (32, 48), (48, 32), (32, 48), (32, 48), (24, 48), (32, 48)]
    # each pixel confidently owned by one query (coarse label blocks) plus noise, so segments survive
    masks = []
    for h, w in shapes:
        labels = torch.randint(0, num_queries, (1, 1, 3, 4), generator=generator).float()
        labels = torch.nn.functional.interpolate(labels, size=(h // 2, w // 2), mode="nearest")[0, 0].long()
        one_hot = torch.nn.functional.one_hot(labels, num_queries).permute(2, 0, 1).float()
        masks.append(one_hot * 10 - 5 + torch.randn(num_queries, h // 2, w // 2, generator=generator))
    return logits, masks, shapes


def _streamed(name, options, logits, masks, shapes, chunk, spill_dir=None):
    stream = streaming_postprocessor(name, logits, options, torch.device("cpu"), spill_dir)
    for start in range(0, len(masks), chunk):
        idx = list(range(start, min(start + chunk, len(masks))))
        stream.add(idx, [masks[i] for i in idx], [shapes[i] for i in idx])
    segments = stream.finish()
    order, pans, confs = [], [], []
    for idx, chunk_pans, chunk_confs in stream.maps():
        order += idx
        pans += chunk_pans
        confs += chunk_confs
    assert order == list(range(len(masks)))
    return segments, pans, confs


@pytest.mark.parametrize("name", ["standard_v1", "standard_v2", "qubo"])
@pytest.mark.parametrize("chunk", [1, 3, 7])
@pytest.mark.parametrize("seed", [0, 1])
def test_chunked_postprocessing_equals_whole_scene(name, chunk, seed):
    logits, masks, shapes = _scene(seed)
    processor = POSTPROCESSORS.get(name)
    overrides = {"num_iters": 500, "num_restarts": 8} if name == "qubo" else {}
    options = processor.options(overrides)
    whole = processor(logits, masks, shapes, options)
    segments, pans, confs = _streamed(name, options, logits, masks, shapes, chunk)
    assert segments == whole.segments_info
    assert len(whole.segments_info) > 0
    for a, b in zip(pans, whole.pan):
        assert torch.equal(a, b)
    for a, b in zip(confs, whole.conf):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["standard_v1", "standard_v2", "qubo"])
def test_no_candidates_gives_void_maps_like_the_whole_scene(name):
    logits, masks, shapes = _scene(2)
    logits = torch.full_like(logits, -20.0)
    processor = POSTPROCESSORS.get(name)
    options = processor.options({"num_iters": 200, "num_restarts": 2} if name == "qubo" else {})
    whole = processor(logits, masks, shapes, options)
    segments, pans, confs = _streamed(name, options, logits, masks, shapes, 2)
    assert segments == whole.segments_info
    assert all(torch.equal(a, b) for a, b in zip(pans, whole.pan))
    assert all(torch.equal(a, b) for a, b in zip(confs, whole.conf))


def _streamed_spilling(name, options, logits, masks, shapes, chunk, spill_dir, budget):
    stream = streaming_postprocessor(name, logits, options, torch.device("cpu"), spill_dir, budget)
    for start in range(0, len(masks), chunk):
        idx = list(range(start, min(start + chunk, len(masks))))
        stream.add(idx, [masks[i] for i in idx], [shapes[i] for i in idx])
    spilled_files = len(list(spill_dir.iterdir()))
    segments = stream.finish()
    pans, confs = [], []
    for _, chunk_pans, chunk_confs in stream.maps():
        pans += chunk_pans
        confs += chunk_confs
    return spilled_files, (segments, pans, confs)


@pytest.mark.parametrize("name", ["standard_v2", "qubo"])
def test_spilled_mask_logits_give_the_same_results(name, tmp_path):
    """Past the host budget (here 0 bytes) the kept logits wait on disk, one file per chunk, and the results
    do not change."""
    logits, masks, shapes = _scene(0)
    processor = POSTPROCESSORS.get(name)
    options = processor.options({"num_iters": 300, "num_restarts": 4} if name == "qubo" else {})
    in_memory = _streamed(name, options, logits, masks, shapes, 3)
    files, spilled = _streamed_spilling(name, options, logits, masks, shapes, 3, tmp_path, 0)
    assert files == 3  # 7 views in chunks of 3
    assert spilled[0] == in_memory[0] and len(spilled[0]) > 0
    for kept, read_back in zip(in_memory[1] + in_memory[2], spilled[1] + spilled[2], strict=True):
        assert torch.equal(kept, read_back)


@pytest.mark.parametrize("name", ["standard_v2", "qubo"])
def test_bf16_mask_logits_give_the_results_of_their_float32_values(name):
    """Streams keep bf16 logits as bf16 (half the bytes); the results are those of their float32 values."""
    logits, masks, shapes = _scene(1)
    masks = [m.bfloat16() for m in masks]
    processor = POSTPROCESSORS.get(name)
    options = processor.options({"num_iters": 300, "num_restarts": 4} if name == "qubo" else {})
    whole = processor(logits, [m.float() for m in masks], shapes, options)
    segments, pans, confs = _streamed(name, options, logits, masks, shapes, 3)
    assert segments == whole.segments_info and len(segments) > 0
    assert all(torch.equal(a, b) for a, b in zip(pans, whole.pan))
    assert all(torch.equal(a, b) for a, b in zip(confs, whole.conf))
