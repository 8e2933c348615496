"""A fresh run's starting weights: a MUSt3R backbone alone, a whole model, or nothing."""

from __future__ import annotations

import pytest
import torch

from panst3r_core.checkpoint.ours import load_checkpoint
from panst3r_core.engine.initial_weights import MUST3R_MODULES, load_initial_weights
from panst3r_core.model.variants import build_model
from panst3r_core.pretrained import SYNTHETIC_MODEL, shipped_model

SHIPPED = f"shipped:{SYNTHETIC_MODEL}"


def _fresh(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(load_checkpoint(shipped_model()).metadata["variant"])


def _equal_to_shipped(model: torch.nn.Module) -> dict[str, bool]:
    shipped = load_checkpoint(shipped_model()).model.state_dict()
    return {key: torch.equal(value, shipped[key]) for key, value in model.state_dict().items()}


def test_a_whole_model_replaces_every_weight():
    model = _fresh()
    load_initial_weights(model, must3r_chkpt=None, chkpt=SHIPPED)
    assert all(_equal_to_shipped(model).values())


def test_a_must3r_backbone_sets_only_the_must3r_modules():
    model, reference = _fresh(), _fresh().state_dict()
    load_initial_weights(model, must3r_chkpt=SHIPPED, chkpt=None)
    backbone = {key: same for key, same in _equal_to_shipped(model).items() if key.startswith(MUST3R_MODULES)}
    assert backbone and all(backbone.values())
    rest = {key: value for key, value in model.state_dict().items() if not key.startswith(MUST3R_MODULES)}
    assert rest and all(torch.equal(value, reference[key]) for key, value in rest.items())  # still fresh


def test_no_settings_leave_the_fresh_weights():
    model, reference = _fresh(), _fresh()
    load_initial_weights(model, must3r_chkpt=None, chkpt=None)
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values())
    )


@pytest.mark.parametrize("setting", ["must3r_chkpt", "chkpt"])
def test_missing_weights_name_the_setting_and_the_path(tmp_path, setting):
    missing = tmp_path / "model-final"
    with pytest.raises(FileNotFoundError, match=f"training.{setting}: .*model-final does not exist"):
        load_initial_weights(_fresh(), **{"must3r_chkpt": None, "chkpt": None, setting: str(missing)})
