"""Loads the official-output parity fixture from the sibling `shared/` directory of the repository."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[4]


def parity_dir() -> Path:
    return (REPO_ROOT / ".." / "shared" / "fixtures" / "parity").resolve()


@pytest.fixture(scope="session")
def parity() -> dict:
    """b2 inputs of the official post-processing and its outputs (c_*), plus the manifest."""
    directory = parity_dir()
    if not (directory / "tiny_v1_outputs.npz").exists():
        pytest.skip(f"parity fixture not found at {directory} (needs the shared/ folder next to the repo)")
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
