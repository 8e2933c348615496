"""Loads the official-output parity fixture from the shared `shared/` folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from shared_fixtures import require_parity_fixture


@pytest.fixture(scope="session")
def parity() -> dict:
    """b2 inputs of the official post-processing and its outputs (c_*), plus the manifest."""
    directory = require_parity_fixture()
    import json

    outputs = np.load(directory / "tiny_v1_outputs.npz")
    inputs = np.load(directory / "inputs.npz")
    manifest = json.loads((directory / "manifest.json").read_text())
    data = {key: outputs[key] for key in outputs.files if key.startswith(("c_", "b2_pred"))}
    data["true_shape"] = inputs["true_shape"]
    data["manifest"] = manifest
    data["logits"] = torch.from_numpy(data["b2_pred_logits"])
    data["masks"] = list(torch.from_numpy(data["b2_pred_masks"]))  # per view (1, Q, h, w)
    data["shapes"] = torch.from_numpy(data["true_shape"])
    return data
