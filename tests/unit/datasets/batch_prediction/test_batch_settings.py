"""Prediction settings and the checkpoint's identity: content decides, not names or times."""

from __future__ import annotations

import dataclasses
import os

import pytest

from datasets.batch_prediction.settings import (
    PredictionSettings,
    checkpoint_content_hash,
    prediction_identity,
)
from datasets.store.hashing import DigestCache


def _model_folder(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights-1")
    (folder / "config.json").write_text("{}")
    return folder


def test_checkpoint_hash_follows_content_not_times(tmp_path):
    folder = _model_folder(tmp_path)
    first = checkpoint_content_hash(folder, DigestCache())
    os.utime(folder / "model.safetensors", ns=(5, 5))
    assert checkpoint_content_hash(folder, DigestCache()) == first
    (folder / "model.safetensors").write_bytes(b"weights-2")
    assert checkpoint_content_hash(folder, DigestCache()) != first


def test_a_copied_checkpoint_keeps_its_hash(tmp_path):
    single = tmp_path / "model.pth"
    single.write_bytes(b"pth")
    copy = tmp_path / "elsewhere.pth"
    copy.write_bytes(b"pth")
    assert checkpoint_content_hash(single, DigestCache()) == checkpoint_content_hash(copy, DigestCache())


def test_missing_checkpoint_names_the_flag(tmp_path):
    with pytest.raises(FileNotFoundError, match="--weights"):
        checkpoint_content_hash(tmp_path / "nope", DigestCache())


def test_settings_survive_the_trip_through_a_flow_parameter():
    settings = PredictionSettings(class_names=("wall", "chair"), postprocess_options={"cls_threshold": 0.2})
    assert PredictionSettings.from_dict(dataclasses.asdict(settings)) == settings
    as_json = {**dataclasses.asdict(settings), "class_names": ["wall", "chair"], "class_sets": ["scannetpp"]}
    assert PredictionSettings.from_dict(as_json).class_sets == ("scannetpp",)
    with pytest.raises(ValueError, match="unknown prediction settings keyframes; valid: amp"):
        PredictionSettings.from_dict({"keyframes": 3})


def test_the_identity_holds_the_class_embeddings_content(tmp_path):
    folder = _model_folder(tmp_path)
    embeddings = tmp_path / "e.npy"
    embeddings.write_bytes(b"one")
    settings = PredictionSettings(class_names=("a",), class_embeddings=str(embeddings))
    first = prediction_identity(folder, settings, DigestCache())
    embeddings.write_bytes(b"two")
    second = prediction_identity(folder, settings, DigestCache())
    assert first.settings["class_embeddings_hash"] != second.settings["class_embeddings_hash"]
    assert first.key("input") != second.key("input")


@pytest.mark.parametrize(
    "changed",
    [{"attention": "sdpa", "tf32": False}, {"encoder_attention": "tf32", "compile": True}],
)
def test_kernel_settings_enter_the_record_only_away_from_their_defaults(changed):
    """Manifests written before these settings existed still match at the defaults; away from them the
    outputs may change (in the last bits at least), so a scene predicted without them is predicted again."""
    recorded = PredictionSettings().recorded()
    assert not set(changed) & set(recorded)
    settings = PredictionSettings(**changed)
    for name, value in changed.items():
        assert settings.recorded()[name] == value
        assert settings.predictor_options()[name] == value
