from __future__ import annotations

import json

import pytest
import torch

from panst3r_core.checkpoint.loading import load_any_checkpoint
from panst3r_core.checkpoint.official import load_official_checkpoint
from panst3r_core.checkpoint.ours import load_checkpoint, save_checkpoint
from panst3r_core.model.variants import build_model


def _forward(model):
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(1, 2, 3, 64, 96, generator=generator) * 2 - 1
    emb = torch.nn.functional.normalize(torch.randn(4, 768, generator=generator), dim=-1)
    with torch.no_grad():
        return model(images, emb)


def test_converted_tiny_checkpoint_round_trips_with_identical_outputs(parity_dir, tmp_path):
    official = load_official_checkpoint(parity_dir / "tiny_v1.pth", parity_dir / "tiny_dino_config.json")
    save_checkpoint(
        official.model, tmp_path / "ckpt", {**official.metadata, "class_names": ["wall", "floor"]}
    )
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.config == official.config
    assert loaded.metadata["class_names"] == ["wall", "floor"]
    assert loaded.metadata["postprocess_default"] == "standard_v2"
    a, b = _forward(official.model), _forward(loaded.model)
    assert torch.equal(a["pred_logits"], b["pred_logits"])
    assert torch.equal(a["pred_masks"], b["pred_masks"])
    assert torch.equal(a["pointmaps"], b["pointmaps"])
    assert load_any_checkpoint(tmp_path / "ckpt").config == official.config


def test_v2_variant_round_trips(tmp_path):
    model = build_model("tiny_v2").eval()
    save_checkpoint(model, tmp_path / "v2")
    loaded = load_checkpoint(tmp_path / "v2")
    assert loaded.config.panoptic.loftup is not None
    assert torch.equal(_forward(model)["pred_masks"], _forward(loaded.model)["pred_masks"])


def test_unknown_config_keys_and_wrong_format_are_errors(tmp_path):
    save_checkpoint(build_model("tiny_v1"), tmp_path / "c")
    path = tmp_path / "c" / "config.json"
    document = json.loads(path.read_text())
    document["model"]["encoder"]["embed_dimm"] = 3
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="embed_dimm"):
        load_checkpoint(tmp_path / "c")
    document["format_version"] = 99
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="version 99"):
        load_checkpoint(tmp_path / "c")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing")


def test_float16_storage_halves_the_file_and_loads_back_close(tmp_path):
    import torch

    from panst3r_core.checkpoint.ours import WEIGHTS_FILE, load_checkpoint, save_checkpoint
    from panst3r_core.model.variants import build_model

    torch.manual_seed(0)
    model = build_model("tiny_v2")
    full = save_checkpoint(model, tmp_path / "fp32")
    half = save_checkpoint(model, tmp_path / "fp16", dtype=torch.float16)
    assert (half / WEIGHTS_FILE).stat().st_size < 0.55 * (full / WEIGHTS_FILE).stat().st_size
    loaded = load_checkpoint(half).model
    for key, value in model.state_dict().items():
        restored = loaded.state_dict()[key]
        assert restored.dtype == value.dtype, key
        torch.testing.assert_close(restored, value, rtol=1e-3, atol=1e-3)
