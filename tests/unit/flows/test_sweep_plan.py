"""The input size an evaluation sweep gives each checkpoint."""

from __future__ import annotations

import json
import logging

from flows.sweep_plan import DEFAULT_IMAGE_SIZE, input_size
from panst3r_core.pretrained import shipped_model


def test_a_model_folder_is_evaluated_at_its_training_resolution(caplog):
    with caplog.at_level(logging.WARNING):
        assert input_size(str(shipped_model())) == 256
    assert not caplog.records


def test_a_model_folder_without_a_recorded_resolution_falls_back_to_512_with_a_warning(tmp_path, caplog):
    folder = tmp_path / "converted"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"format": "panst3r-safetensors", "metadata": {}}))
    with caplog.at_level(logging.WARNING):
        assert input_size(str(folder)) == DEFAULT_IMAGE_SIZE
    assert "records no training resolution" in caplog.text and "--image-size" in caplog.text


def test_an_official_checkpoint_file_takes_512_quietly(tmp_path, caplog):
    released = tmp_path / "panst3r_v1_512.pth"
    released.write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        assert input_size(str(released)) == DEFAULT_IMAGE_SIZE
    assert not caplog.records
