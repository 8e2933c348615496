"""Streaming inference (views in chunks) gives bitwise the outputs of the all-at-once engine on the CPU."""

from __future__ import annotations

import pytest
import torch

from panst3r_core.inference.engine import InferenceOptions, run_inference
from panst3r_core.inference.streaming import stream_inference
from panst3r_core.model.variants import build_model

PER_VIEW = ("pointmaps", "pts3d", "pts3d_local", "conf", "mask_logits")


@pytest.fixture(scope="module")
def scene():
    torch.manual_seed(0)
    model = build_model("tiny_v2").eval()
    generator = torch.Generator().manual_seed(1)
    shapes = [(64, 96)] * 4 + [(96, 64), (64, 96), (64, 96)]  # one portrait view among landscape ones
    images = [torch.rand(3, h, w, generator=generator) * 2 - 1 for h, w in shapes]
    return model, images, torch.randn(6, 768, generator=generator)


@pytest.mark.parametrize("num_keyframes", [3, None])
@pytest.mark.parametrize("chunk_views", [1, 3, 7])
def test_chunked_outputs_equal_unchunked(scene, num_keyframes, chunk_views):
    model, images, emb = scene
    options = InferenceOptions(num_keyframes=num_keyframes, max_batch=4)
    whole = run_inference(model, images, emb, options)
    heads = []
    chunks = list(stream_inference(model, images, emb, chunk_views, options, on_head=heads.append))
    assert [i for c in chunks for i in c.indices] == list(range(len(images)))
    (head,) = heads
    assert head.keyframes == whole.keyframes
    assert torch.equal(head.class_logits, whole.class_logits)
    assert torch.equal(head.out_queries, whole.out_queries)
    for name in PER_VIEW:
        streamed = [t for c in chunks for t in getattr(c, name)]
        assert all(torch.equal(a, b) for a, b in zip(streamed, getattr(whole, name), strict=True)), name
    assert torch.equal(torch.cat([c.focal for c in chunks]), whole.focal)
    assert torch.equal(torch.cat([c.cam_to_world for c in chunks]), whole.cam_to_world)


def test_chunk_views_must_be_positive(scene):
    model, images, emb = scene
    with pytest.raises(ValueError, match="chunk_views"):
        next(stream_inference(model, images, emb, 0))
