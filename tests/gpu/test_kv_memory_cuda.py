"""CUDA graphs of the keyframe-memory updates: replays equal the eager updates (float32 and bf16)."""

from __future__ import annotations

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def _memories(dtype: torch.dtype | None):
    from panst3r_core.model.config import DecoderConfig
    from panst3r_core.model.must3r_decoder import Must3rDecoder
    from panst3r_core.model.must3r_encoder import patch_positions
    from panst3r_core.model.must3r_kv_memory import KVMemory

    torch.manual_seed(0)
    decoder = Must3rDecoder(DecoderConfig(enc_embed_dim=64, embed_dim=64, depth=3, num_heads=2)).cuda().eval()
    grids = [(4, 6)] * 6 + [(6, 4)] * 3 + [(4, 6)]
    tokens = [torch.randn(1, h * w, 64, device="cuda") for h, w in grids]
    positions = [patch_positions(1, h, w, torch.device("cuda")) for h, w in grids]
    capacity = sum(t.shape[1] for t in tokens)
    out = []
    autocast = torch.autocast("cuda", dtype=dtype, enabled=dtype is not None)
    with torch.no_grad(), autocast:
        for graphs in (False, True):
            memory = KVMemory(
                decoder, capacity, dtype=dtype or torch.float32, device="cuda", cuda_graphs=graphs
            )
            feats = memory.add(tokens[:2], positions[:2])
            for i in range(2, len(tokens)):
                feats += memory.add(tokens[i : i + 1], positions[i : i + 1])
            out.append((memory, feats))
    torch.cuda.synchronize()
    return out


@pytest.mark.parametrize(("dtype", "tolerance"), [(None, 1e-5), (torch.bfloat16, 2e-2)])
def test_graph_replays_equal_eager_updates(dtype, tolerance):
    torch.backends.cuda.matmul.allow_tf32 = False
    (eager, eager_feats), (graphed, graphed_feats) = _memories(dtype)
    assert graphed.graphs is not None and len(graphed.graphs._graphs) >= 2  # both buckets, with replays
    for a, b in zip(graphed_feats, eager_feats):
        assert _rel(a, b) < tolerance
    for (k, v), (rk, rv) in zip(graphed.render_kv(), eager.render_kv()):
        assert _rel(k, rk) < tolerance and _rel(v, rv) < tolerance


def test_bf16_inference_with_and_without_graphs_agree():
    from panst3r_core.inference.engine import InferenceOptions, run_inference
    from panst3r_core.model.variants import build_model

    torch.manual_seed(0)
    model = build_model("tiny_v1", device="cuda").eval()
    views = list(torch.rand(9, 3, 64, 96, device="cuda") * 2 - 1)
    emb = torch.randn(5, 768, device="cuda")
    results = [
        run_inference(model, views, emb, InferenceOptions(num_keyframes=7, amp="bf16", cuda_graphs=graphs))
        for graphs in (False, True)
    ]
    eager, graphed = results
    # only the summation order inside the memory attention differs (masked buckets vs prefixes)
    assert _rel(graphed.stacked("pointmaps"), eager.stacked("pointmaps")) < 1e-2
    assert _rel(graphed.stacked("mask_logits"), eager.stacked("mask_logits")) < 2e-2
