"""Key contract of the full-size models and a CPU forward/backward test of every registered variant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from panst3r_core.checkpoint.official import rename_transformers4_keys
from panst3r_core.model.variants import VARIANTS, build_model

REFERENCE = Path(__file__).resolve().parents[4] / ".." / "shared" / "reference"
TINY = [name for name in VARIANTS.names() if name.startswith("tiny")]
FULL = [name for name in VARIANTS.names() if name.startswith("panst3r_")]
MID = [name for name in VARIANTS.names() if name not in TINY and name not in FULL]


def _reference_keys(version: str) -> dict[str, list[int]]:
    path = (REFERENCE / f"state_dict_keys_{version}.json").resolve()
    if not path.is_file():
        pytest.skip(f"reference key list not found at {path} (needs the shared/ folder next to the repo)")
    data = json.loads(path.read_text())
    return {key: value[0] for key, value in data.items() if not key.startswith("_")}


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_full_size_keys_and_shapes_match_the_official_lists(version):
    model = build_model(f"panst3r_{version}_512", device="meta")
    # Canonical (transformers 5) DINOv2 names, whichever transformers release is installed.
    ours = {key: list(t.shape) for key, t in rename_transformers4_keys(model.state_dict()).items()}
    reference = _reference_keys(version)
    assert sorted(set(reference) - set(ours)) == []
    assert sorted(set(ours) - set(reference)) == []
    assert {k: ours[k] for k in reference if ours[k] != reference[k]} == {}


def test_full_size_parameter_counts_match_the_spec():
    counts = {
        v: sum(p.numel() for p in build_model(f"panst3r_{v}_512", device="meta").parameters())
        for v in ("v1", "v2")
    }
    assert counts == {"v1": 878_891_009, "v2": 805_574_387}


def _inputs(model, views=3, height=64, width=96, classes=5):
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(1, views, 3, height, width, generator=generator) * 2 - 1
    lang = model.config.panoptic.lang_dim
    emb = torch.randn(classes, lang, generator=generator)
    return images, emb / emb.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize("name", TINY)
def test_tiny_variant_forward_and_backward_on_cpu(name):
    torch.manual_seed(0)
    model = build_model(name)
    images, emb = _inputs(model)
    out = model(images, emb)
    queries = model.config.panoptic.num_queries
    assert out["pred_logits"].shape == (1, queries, 5)
    assert out["pred_masks"].shape == (1, 3, queries, 32, 48)
    assert out["pointmaps"].shape == (1, 3, 64, 96, 7)
    assert len(out["aux_outputs"]) == model.config.panoptic.dec_layers
    loss = out["pred_logits"].square().mean() + out["pred_masks"].sigmoid().mean()
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    # Frozen backbones get no gradient; every panoptic-decoder parameter that influences the loss does.
    assert grads and all(n.startswith("panoptic_decoder.") for n in grads)
    assert grads["panoptic_decoder.mask_transformer.query_feat.weight"].abs().sum() > 0
    assert all(torch.isfinite(g).all() for g in grads.values())


@pytest.mark.parametrize("name", TINY)
def test_tiny_variant_trains_backbones_when_asked(name):
    model = build_model(name)
    images, emb = _inputs(model, views=2)
    out = model(images, emb, train_must3r=True, train_dino=True)
    (out["pred_logits"].mean() + out["pointmaps"].mean()).backward()
    assert model.must3r_encoder.patch_embed.proj.weight.grad is not None
    assert model.dino_encoder.dinov2.embeddings.patch_embeddings.projection.weight.grad is not None


@pytest.mark.parametrize("name", FULL)
def test_full_size_variant_forward_and_backward_on_meta_device(name):
    # Real full-size tensors would need ~10 GB and minutes on 2 CPU cores; the meta device runs the same
    # forward and backward graph with shapes only, so every shape and every gradient path is checked.
    model = build_model(name, device="meta")
    images = torch.empty(1, 2, 3, 384, 512, device="meta")
    emb = torch.empty(4, 768, device="meta")
    out = model(images, emb, train_must3r=True, train_dino=True)
    assert out["pred_logits"].shape == (1, 200, 4)
    assert out["pred_masks"].shape == (1, 2, 200, 192, 256)
    assert out["pointmaps"].shape == (1, 2, 384, 512, 7)
    (out["pred_logits"].sum() + out["pred_masks"].sum() + out["pointmaps"].sum()).backward()
    without_grad = [n for n, p in model.named_parameters() if p.grad is None]
    # DINOv2's mask token is only used for masked-image pretraining.
    assert without_grad == ["dino_encoder.dinov2.embeddings.mask_token"]


def test_every_variant_is_tested_somewhere():
    assert sorted(TINY + FULL + MID) == sorted(VARIANTS.names()) and "small_v1" in MID


@pytest.mark.parametrize("name", MID)
def test_mid_size_variant_forward_and_backward_on_cpu_with_backbones_trained(name):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model(name)
    model.config.validate()
    images, emb = _inputs(model, views=2, height=64, width=96, classes=4)
    out = model(images, emb, train_must3r=True, train_dino=True)
    queries = model.config.panoptic.num_queries
    assert out["pred_logits"].shape == (1, queries, 4)
    assert out["pred_masks"].shape == (1, 2, queries, 32, 48)
    assert len(out["aux_outputs"]) == model.config.panoptic.dec_layers
    loss = out["pred_logits"].square().mean() + out["pred_masks"].sigmoid().mean()
    loss.backward()
    # Trained from scratch: the loss reaches every backbone as well as the panoptic decoder.
    for name_prefix in ("must3r_encoder.", "must3r_decoder.", "dino_encoder.", "panoptic_decoder."):
        grads = [
            p.grad for n, p in model.named_parameters() if n.startswith(name_prefix) and p.grad is not None
        ]
        assert grads and any(g.abs().sum() > 0 for g in grads), name_prefix
        assert all(torch.isfinite(g).all() for g in grads), name_prefix


def test_unknown_variant_lists_registered_names():
    with pytest.raises(ValueError, match="panst3r_v1_512"):
        build_model("no_such_variant")


def test_class_prior_starts_every_class_at_that_probability_and_official_heads_have_no_bias():
    from panst3r_core.model.variants import variant_config

    torch.manual_seed(0)
    model = build_model("compact_wide_v2")
    assert "panoptic_decoder.mask_transformer.cls_logit_bias" in model.state_dict()
    queries = torch.randn(100, 1, 256)
    embeddings = torch.nn.functional.normalize(torch.randn(7, 768), dim=-1)
    with torch.no_grad():
        probs = model.panoptic_decoder.mask_transformer.class_logits(queries, embeddings).sigmoid()
    # cosine logits scaled by e lie in [-e, e] around the prior's logit (-4.6)
    assert float(probs.max()) < 0.2 and float(probs.mean()) == pytest.approx(0.01, rel=1.0)
    assert not any("cls_logit_bias" in key for key in build_model("tiny_v2").state_dict())
    config = variant_config("compact_wide_v2")
    config.panoptic.class_prior = 1.0
    with pytest.raises(ValueError, match="class_prior"):
        config.validate()
