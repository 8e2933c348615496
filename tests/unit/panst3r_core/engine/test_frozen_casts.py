import copy

import pytest
import torch
from torch import nn

from panst3r_core.engine.frozen_casts import CastCachingLinear, cache_frozen_linear_casts

variants = pytest.importorskip("panst3r_core.model.variants")
hashed = pytest.importorskip("panst3r_core.model.hashed_text_embedding")


def _frozen_pair(seed: int = 0) -> tuple[nn.Linear, nn.Linear]:
    torch.manual_seed(seed)
    plain = nn.Linear(24, 16).requires_grad_(False)
    cached = copy.deepcopy(plain)
    assert cache_frozen_linear_casts(cached) == 1
    return plain, cached


def test_a_frozen_layer_under_autocast_gives_the_plain_layers_output_bit_for_bit():
    plain, cached = _frozen_pair()
    x = torch.randn(5, 24)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected, first, second = plain(x), cached(x), cached(x)
    assert first.dtype == torch.bfloat16 and torch.equal(first, expected) and torch.equal(second, expected)
    assert isinstance(cached, CastCachingLinear) and cached.state_dict().keys() == plain.state_dict().keys()


def test_the_cast_is_made_once_and_remade_when_the_weights_change():
    plain, cached = _frozen_pair()
    x = torch.randn(3, 24)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cached(x)
        cast = cached.__dict__["_autocast_cast"][1]
        cached(x)
        assert cached.__dict__["_autocast_cast"][1] is cast  # reused, not cast again
        replacement = nn.Linear(24, 16)
        cached.load_state_dict(replacement.state_dict())  # in place, as a resume does
        plain.load_state_dict(replacement.state_dict())
        assert torch.equal(cached(x), plain(x))
        assert cached.__dict__["_autocast_cast"][1] is not cast


def test_outside_autocast_or_while_training_the_layer_is_plain():
    plain, cached = _frozen_pair()
    x = torch.randn(3, 24)
    assert torch.equal(cached(x), plain(x)) and "_autocast_cast" not in cached.__dict__
    cached.requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = cached(x)
    out.float().sum().backward()
    assert cached.weight.grad is not None and "_autocast_cast" not in cached.__dict__


def test_a_real_model_with_a_frozen_backbone_gives_the_same_outputs_and_gradients():
    torch.manual_seed(0)
    model = variants.build_model("tiny_v1")
    model.requires_grad_(False).panoptic_decoder.requires_grad_(True)
    cached = copy.deepcopy(model)
    assert cache_frozen_linear_casts(cached) > 10
    images = torch.rand(1, 2, 3, 48, 64) * 2 - 1
    embeddings = hashed.hashed_class_embeddings(["wall", "chair", "table"])
    results = []
    for net in (model, cached):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net(images, embeddings)
        loss = out["pred_masks"].float().square().mean() + out["pred_logits"].float().square().mean()
        loss.backward()
        grads = {name: p.grad for name, p in net.named_parameters() if p.grad is not None}
        results.append((out["pred_masks"], out["pred_logits"], grads))
    (masks, logits, grads), (masks_c, logits_c, grads_c) = results
    assert any("_autocast_cast" in module.__dict__ for module in cached.modules())
    assert torch.equal(masks, masks_c) and torch.equal(logits, logits_c)
    assert grads.keys() == grads_c.keys() and grads
    assert all(torch.equal(grads[name], grads_c[name]) for name in grads)
