"""The shipped synthetic model: it is where the package says, loads strictly and describes itself."""

from __future__ import annotations

import pytest

from panst3r_core.checkpoint.ours import load_checkpoint
from panst3r_core.pretrained import SYNTHETIC_MODEL, shipped_model, shipped_names


def test_the_shipped_model_is_listed_and_describes_itself():
    assert SYNTHETIC_MODEL in shipped_names()
    loaded = load_checkpoint(shipped_model())
    metadata = loaded.metadata
    assert metadata["variant"] == "compact_smooth_v2" and metadata["text_embeddings"] == "hashed"
    assert metadata["training_resolutions"] == [[256, 192]]
    assert metadata["shipped"]["recipe"] == "two-stage"
    assert metadata["shipped"]["generated"]["seed"] != 0  # make run's scenes are seed 0
    assert "train_stores" not in metadata  # no path of the machine it was trained on
    assert sum(p.numel() for p in loaded.model.parameters()) < 8.1e6


def test_an_unknown_name_lists_the_shipped_models():
    with pytest.raises(FileNotFoundError, match=SYNTHETIC_MODEL):
        shipped_model("imagenet")


def test_weights_settings_name_shipped_models_or_paths(tmp_path):
    from panst3r_core.pretrained import resolve_weights

    assert resolve_weights("shipped:compact_smooth_v2_synthetic") == shipped_model()
    assert resolve_weights(tmp_path / "model-final") == tmp_path / "model-final"
    with pytest.raises(FileNotFoundError, match="shipped: compact_smooth_v2_synthetic"):
        resolve_weights("shipped:nothing")


def test_existing_weights_name_the_setting_when_they_are_not_there(tmp_path):
    from panst3r_core.pretrained import existing_weights

    assert existing_weights("shipped:compact_smooth_v2_synthetic", "training.chkpt") == shipped_model()
    with pytest.raises(FileNotFoundError, match="training.chkpt: .*model-final does not exist"):
        existing_weights(tmp_path / "model-final", "training.chkpt")
    with pytest.raises(FileNotFoundError, match="training.must3r_chkpt: no shipped model 'nothing'"):
        existing_weights("shipped:nothing", "training.must3r_chkpt")
