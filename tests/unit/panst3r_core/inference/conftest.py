"""The official-output parity fixture (sibling `shared/` folder of the repository) and the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

PARITY_DIR = (Path(__file__).resolve().parents[4] / ".." / "shared" / "fixtures" / "parity").resolve()


def relative_error(ours, reference) -> float:
    ours = np.asarray(ours.detach().cpu() if isinstance(ours, torch.Tensor) else ours, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    assert ours.shape == reference.shape, (ours.shape, reference.shape)
    return float(np.linalg.norm(ours - reference) / np.linalg.norm(reference))


@pytest.fixture(scope="session")
def parity():
    if not (PARITY_DIR / "tiny_v1.pth").is_file():
        pytest.skip(f"parity fixture not found at {PARITY_DIR} (needs the shared/ folder next to the repo)")
    from panst3r_core.checkpoint.official import load_official_checkpoint

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    loaded = load_official_checkpoint(PARITY_DIR / "tiny_v1.pth", PARITY_DIR / "tiny_dino_config.json")
    shared = np.load(PARITY_DIR / "shared_must3r_dino.npz")
    outputs = np.load(PARITY_DIR / "tiny_v1_outputs.npz")
    inputs = np.load(PARITY_DIR / "inputs.npz")
    yield {
        "model": loaded.model,
        "reference": {**{k: shared[k] for k in shared.files}, **{k: outputs[k] for k in outputs.files}},
        "images": torch.from_numpy(inputs["images"]),
        "class_emb_raw": torch.from_numpy(outputs["class_emb_raw"]),
        "manifest": json.loads((PARITY_DIR / "manifest.json").read_text()),
        "dir": PARITY_DIR,
    }
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
