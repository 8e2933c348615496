"""KVMemory (keys/values projected once, preallocated) against the training-style decoder memory update."""

from __future__ import annotations

import pytest
import torch

from panst3r_core.model.config import DecoderConfig
from panst3r_core.model.must3r_decoder import Must3rDecoder
from panst3r_core.model.must3r_encoder import patch_positions
from panst3r_core.model.must3r_kv_memory import KVMemory


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.fixture(scope="module")
def decoder_and_images():
    torch.manual_seed(0)
    cfg = DecoderConfig(enc_embed_dim=32, embed_dim=32, depth=3, num_heads=2)
    decoder = Must3rDecoder(cfg).eval()
    with torch.no_grad():  # a non-zero image2 embedding so that the first-image rule matters
        decoder.image2_embed.normal_()
    generator = torch.Generator().manual_seed(1)
    grids = [(2, 3), (2, 3), (3, 2), (2, 3), (3, 2)]
    tokens = [torch.randn(1, h * w, 32, generator=generator) for h, w in grids]
    positions = [patch_positions(1, h, w, torch.device("cpu")) for h, w in grids]
    return decoder, tokens, positions, grids


def _reference(decoder, tokens, positions, grids, batches):
    memory, feats, start = None, [], 0
    for size in batches:
        idx = range(start, start + size)
        memory, f, _ = decoder.update_memory(
            [tokens[i] for i in idx], [positions[i] for i in idx], [grids[i] for i in idx], memory
        )
        feats += f
        start += size
    return memory, feats, decoder.prepare_render(memory)


@pytest.mark.parametrize("batches", [[2, 1, 1, 1], [1, 1, 1, 1, 1], [2, 2, 1], [3, 2]])
def test_kv_memory_matches_update_memory_and_prepare_render(decoder_and_images, batches):
    decoder, tokens, positions, grids = decoder_and_images
    with torch.no_grad():
        memory, ref_feats, ref_kv = _reference(decoder, tokens, positions, grids, batches)
        kv = KVMemory(decoder, capacity=sum(t.shape[1] for t in tokens), keep_values=True)
        feats, start = [], 0
        for size in batches:
            feats += kv.add(tokens[start : start + size], positions[start : start + size])
            start += size
    assert kv.length == memory.num_tokens and kv.num_images == memory.num_images == 5
    for ours, ref in zip(feats, ref_feats):
        assert _rel(ours, ref) < 1e-6
    for (k, v), (rk, rv) in zip(kv.render_kv(), ref_kv):
        assert k.shape == rk.shape and _rel(k, rk) < 1e-6 and _rel(v, rv) < 1e-6
    ours_memory = kv.decoder_memory()
    assert torch.equal(ours_memory.labels, memory.labels)
    for ours, ref in zip(ours_memory.values, memory.values):
        assert _rel(ours, ref) < 1e-6


def test_kv_memory_without_feedback(decoder_and_images):
    _, tokens, positions, grids = decoder_and_images
    torch.manual_seed(2)
    decoder = Must3rDecoder(
        DecoderConfig(enc_embed_dim=32, embed_dim=32, depth=2, num_heads=2, feedback_type=None)
    )
    with torch.no_grad():
        _, ref_feats, ref_kv = _reference(decoder.eval(), tokens[:3], positions[:3], grids[:3], [2, 1])
        kv = KVMemory(decoder, capacity=sum(t.shape[1] for t in tokens[:3]))
        feats = kv.add(tokens[:2], positions[:2]) + kv.add(tokens[2:3], positions[2:3])
    assert all(_rel(a, b) < 1e-6 for a, b in zip(feats, ref_feats))
    assert all(_rel(k, rk) < 1e-6 for (k, _), (rk, _) in zip(kv.render_kv(), ref_kv))


def test_capacity_and_values_errors(decoder_and_images):
    decoder, tokens, positions, _ = decoder_and_images
    kv = KVMemory(decoder, capacity=tokens[0].shape[1])
    with torch.no_grad():
        kv.add(tokens[:1], positions[:1])
        with pytest.raises(ValueError, match="exceeds"):
            kv.add(tokens[1:2], positions[1:2])
    with pytest.raises(ValueError, match="keep_values"):
        kv.decoder_memory()
    with pytest.raises(ValueError, match="capacity"):
        KVMemory(decoder, capacity=0)


def test_bucketed_masked_updates_equal_the_prefix_updates(decoder_and_images):
    """What the CUDA graphs replay (whole buckets with unfilled rows masked, index writes), run eagerly."""
    decoder, tokens, positions, _ = decoder_and_images
    capacity = sum(t.shape[1] for t in tokens)
    with torch.no_grad():
        prefix = KVMemory(decoder, capacity=capacity)
        bucketed = KVMemory(decoder, capacity=capacity)
        bucketed.use_step_graphs(capture=False)
        assert bucketed.graphs is not None and bucketed.graphs.buckets == [16, capacity]
        for memory in (prefix, bucketed):
            feats = memory.add(tokens[:2], positions[:2])
            feats += [memory.add(tokens[i : i + 1], positions[i : i + 1])[0] for i in range(2, 5)]
            memory.feats = feats
    assert bucketed.length == prefix.length == capacity
    # (6 tokens, bucket 16) and (6 tokens, bucket 30): the last image (3x2 grid) reuses the step of the
    # 2x3 one before it with its own positions, as a graph replay would
    assert sorted(key[-1] for key in bucketed.graphs._graphs) == [16, 30]
    for ours, ref in zip(bucketed.feats, prefix.feats):
        assert _rel(ours, ref) < 1e-6
    for (k, v), (rk, rv) in zip(bucketed.render_kv(), prefix.render_kv()):
        assert _rel(k, rk) < 1e-6 and _rel(v, rv) < 1e-6
    with pytest.raises(ValueError, match="empty"):
        bucketed.use_step_graphs()
