import random

import numpy as np
import pytest
import torch
from torch import nn

from panst3r_core.engine.checkpointing import (
    LAST,
    Progress,
    capture_rng_state,
    find_resume_checkpoint,
    load_weights,
    read_progress,
    read_training_state,
    restore_rng_state,
    save_checkpoint,
)


def test_rng_states_round_trip():
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    state = capture_rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_save_load_and_atomic_replacement(tmp_path):
    model = nn.Linear(3, 2)
    state = {"optimizer": {"x": torch.ones(2)}, "rng": [capture_rng_state()]}
    path = save_checkpoint(tmp_path / LAST, model, {"model": {"variant": "toy"}}, Progress(1, 2, 3), state)
    assert sorted(p.name for p in path.iterdir()) == [
        "meta.json",
        "model.safetensors",
        "train_config.json",
        "training_state.pt",
    ]
    assert read_progress(path) == Progress(1, 2, 3)
    assert torch.equal(read_training_state(path)["optimizer"]["x"], torch.ones(2))
    other = nn.Linear(3, 2)
    load_weights(other, path)
    assert torch.equal(other.weight, model.weight)
    # A second save replaces the first and leaves no temporary or old directory behind.
    save_checkpoint(tmp_path / LAST, model, {}, Progress(2, 0, 4), state)
    assert sorted(p.name for p in tmp_path.iterdir()) == [LAST]
    assert read_progress(tmp_path / LAST).global_step == 4


def test_find_resume_checkpoint_skips_incomplete_and_falls_back_to_old(tmp_path):
    assert find_resume_checkpoint(tmp_path) is None
    model = nn.Linear(2, 2)
    state = {"rng": []}
    save_checkpoint(tmp_path / LAST, model, {}, Progress(1, 0, 2), state)
    # Simulate a crash between the two renames: only `.old` is left, plus a half-written `.tmp`.
    (tmp_path / LAST).rename(tmp_path / (LAST + ".old"))
    (tmp_path / (LAST + ".tmp")).mkdir()
    assert find_resume_checkpoint(tmp_path) == tmp_path / (LAST + ".old")
    # An incomplete checkpoint-last (no meta.json) is not used.
    (tmp_path / LAST).mkdir()
    assert find_resume_checkpoint(tmp_path) == tmp_path / (LAST + ".old")


def test_weights_for_another_model_are_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / "c", nn.Linear(3, 2), {}, Progress())
    with pytest.raises(ValueError, match="missing"):
        load_weights(nn.Sequential(nn.Linear(3, 2)), path)
    with pytest.raises(FileNotFoundError):
        load_weights(nn.Linear(3, 2), tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="weights only"):
        read_training_state(path)


def test_loading_only_the_must3r_weights_leaves_the_rest(tmp_path):
    from panst3r_core.checkpoint.ours import save_checkpoint
    from panst3r_core.model.variants import build_model

    torch.manual_seed(0)
    source = build_model("tiny_v1")
    path = save_checkpoint(source, tmp_path / "model-final")
    torch.manual_seed(1)
    target = build_model("tiny_v1")
    head_before = {k: v.clone() for k, v in target.state_dict().items() if k.startswith("panoptic_decoder.")}
    load_weights(target, path, only=("must3r_encoder", "must3r_decoder"))
    for key, value in target.state_dict().items():
        if key.startswith(("must3r_encoder.", "must3r_decoder.")):
            assert torch.equal(value, source.state_dict()[key]), key
        elif key in head_before:
            assert torch.equal(value, head_before[key]), key


def test_loading_must3r_weights_of_another_size_names_the_keys(tmp_path):
    from panst3r_core.checkpoint.ours import save_checkpoint
    from panst3r_core.model.variants import build_model

    path = save_checkpoint(build_model("tiny_v1"), tmp_path / "model-final")
    with pytest.raises(ValueError, match="must3r_encoder, must3r_decoder weights do not fit"):
        load_weights(build_model("small_v1", device="meta"), path, only=("must3r_encoder", "must3r_decoder"))
