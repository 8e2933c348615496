from __future__ import annotations

import argparse
import os
import pickle

import pytest
import torch

from panst3r_core.checkpoint.official import (
    infer_dino_config,
    load_must3r_backbone,
    load_official_checkpoint,
    match_dino_key_names,
    read_official_checkpoint,
    rename_transformers4_keys,
    rename_transformers5_keys,
    safe_torch_load,
)
from panst3r_core.model.variants import build_model


class _Exploit:
    """Unpickling this would run a shell command that creates a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("legacy_format", [False, True])
def test_malicious_pickle_is_refused_without_running_it(tmp_path, legacy_format):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    torch.save(
        {"weights": {"x": torch.zeros(1)}, "args": _Exploit(marker)},
        path,
        _use_new_zipfile_serialization=not legacy_format,
    )
    with pytest.raises(ValueError, match=r"refused: it asks to rebuild (posix|os|nt)\.system, which") as info:
        read_official_checkpoint(path)
    assert "Nothing from the file was executed" in str(info.value)
    assert not marker.exists()


def test_a_plain_pickle_with_a_malicious_object_is_refused(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"weights": _Exploit(marker)}))
    with pytest.raises(ValueError, match=r"plain pickle, not a torch checkpoint.* rebuilt (posix|os|nt)\.system$"):
        safe_torch_load(path)
    assert not marker.exists()


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_official_checkpoint(tmp_path / "nope.pth")


def test_tiny_checkpoint_loads_strictly_with_its_metadata(parity_dir):
    loaded = load_official_checkpoint(parity_dir / "tiny_v1.pth", parity_dir / "tiny_dino_config.json")
    raw = read_official_checkpoint(parity_dir / "tiny_v1.pth").weights
    state = rename_transformers4_keys(loaded.model.state_dict())
    assert set(state) == set(raw)
    assert all(torch.equal(state[k], raw[k]) for k in raw)
    assert loaded.metadata["postprocess_default"] == "standard_v2"
    assert loaded.metadata["qubo_enabled"] is True
    assert loaded.config.dino.num_attention_heads == 2


def test_dino_head_count_needs_the_json_for_non_standard_widths(parity_dir):
    with pytest.raises(ValueError, match="--dino-config"):
        load_official_checkpoint(parity_dir / "tiny_v1.pth")


def test_dino_config_inferred_from_full_size_shapes():
    model = build_model("panst3r_v1_512", device="meta")
    config = infer_dino_config(model.state_dict())
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (1024, 24, 16)
    assert (config.mlp_ratio, config.patch_size, config.image_size) == (4, 14, 518)


def _rewrite(parity_dir, tmp_path, edit) -> str:
    ckpt = read_official_checkpoint(parity_dir / "tiny_v1.pth")
    weights = edit(dict(ckpt.weights))
    path = tmp_path / "edited.pth"
    torch.save({"weights": weights, "args": argparse.Namespace(**ckpt.args), "epoch": 3}, path)
    return path


def test_transformers4_dino_key_names_load(parity_dir, tmp_path):
    names = {
        "q_proj": "attention.query",
        "k_proj": "attention.key",
        "v_proj": "attention.value",
        "o_proj": "output.dense",
    }

    def to_t4(weights):
        out = {}
        for key, value in weights.items():
            for new, old in names.items():
                key = key.replace(f".attention.{new}.", f".attention.{old}.")
            out[key] = value
        return out

    path = _rewrite(parity_dir, tmp_path, to_t4)
    assert any(".attention.attention.query." in k for k in read_official_checkpoint(path).weights)
    loaded = load_official_checkpoint(path, parity_dir / "tiny_dino_config.json")
    reference = load_official_checkpoint(parity_dir / "tiny_v1.pth", parity_dir / "tiny_dino_config.json")
    key = "dino_encoder.dinov2.encoder.layer.1.attention.o_proj.weight"
    ours = rename_transformers4_keys(loaded.model.state_dict())
    assert torch.equal(ours[key], rename_transformers4_keys(reference.model.state_dict())[key])
    assert loaded.metadata["epoch"] == 3


def test_strict_loading_lists_every_missing_and_unexpected_key(parity_dir, tmp_path):
    def damage(weights):
        del weights["must3r_decoder.image2_embed"]
        del weights["panoptic_decoder.mask_transformer.cls_logit_scale"]
        weights["panoptic_decoder.bogus.weight"] = torch.zeros(2)
        weights["must3r_encoder.norm_enc.weight"] = torch.zeros(3)
        return weights

    with pytest.raises(ValueError) as info:
        load_official_checkpoint(_rewrite(parity_dir, tmp_path, damage), parity_dir / "tiny_dino_config.json")
    message = str(info.value)
    assert "2 missing key(s)" in message and "must3r_decoder.image2_embed" in message
    assert "panoptic_decoder.mask_transformer.cls_logit_scale" in message
    assert "1 unexpected key(s)" in message and "panoptic_decoder.bogus.weight" in message
    assert "must3r_encoder.norm_enc.weight: file (3,) vs model (64,)" in message


def test_must3r_checkpoint_initialises_the_backbone(parity_dir, tmp_path):
    source = load_official_checkpoint(parity_dir / "tiny_v1.pth", parity_dir / "tiny_dino_config.json").model
    path = tmp_path / "must3r.pth"
    torch.save(
        {
            "encoder": source.must3r_encoder.state_dict(),
            "decoder": source.must3r_decoder.state_dict(),
            "args": argparse.Namespace(model="x"),
        },
        path,
    )
    target = build_model("tiny_v1")
    load_must3r_backbone(target, path)
    key = "blocks_dec.2.cross_attn.projk.weight"
    assert torch.equal(target.must3r_decoder.state_dict()[key], source.must3r_decoder.state_dict()[key])
    with pytest.raises(ValueError, match="'encoder' and 'decoder'"):
        load_must3r_backbone(target, parity_dir / "tiny_v1.pth")


def test_dino_names_follow_the_installed_transformers_convention():
    t5 = {
        "dino_encoder.dinov2.encoder.layer.0.attention.q_proj.weight": torch.zeros(1),
        "other.attention.q_proj.w": torch.ones(1),
    }
    t4 = rename_transformers5_keys(t5)
    assert set(t4) == {
        "dino_encoder.dinov2.encoder.layer.0.attention.attention.query.weight",
        "other.attention.q_proj.w",
    }
    assert rename_transformers4_keys(t4) == t5
    assert set(match_dino_key_names(t5, list(t4))) == set(t4)
    assert set(match_dino_key_names(t4, list(t5))) == set(t5)
