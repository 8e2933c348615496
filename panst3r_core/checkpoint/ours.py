"""Our checkpoint format: a directory with `model.safetensors` (weights) and `config.json` (the resolved
config dataclasses + metadata such as postprocess_default and class names). Data only, no code."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from panst3r_core.checkpoint.official import (
    LoadedModel,
    load_state_dict_strict,
    match_dino_key_names,
    rename_transformers4_keys,
)
from panst3r_core.config import from_dict
from panst3r_core.model.config import PanSt3RConfig
from panst3r_core.model.panst3r import PanSt3R

FORMAT_NAME = "panst3r-safetensors"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def save_checkpoint(
    model: PanSt3R,
    directory: str | Path,
    metadata: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write `directory/model.safetensors` and `directory/config.json`; returns the directory.

    dtype: store floating-point weights in this precision (e.g. float16 to halve a shipped file); loading
    casts them back to the model's dtype."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # Canonical (transformers 5) DINOv2 names on disk, whatever transformers version wrote the file.
    weights = {k: _stored(v, dtype) for k, v in rename_transformers4_keys(model.state_dict()).items()}
    save_file(weights, str(directory / WEIGHTS_FILE), metadata={"format": FORMAT_NAME})
    document = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model": dataclasses.asdict(model.config),
        "metadata": dict(metadata or {}),
    }
    (directory / CONFIG_FILE).write_text(json.dumps(document, indent=2) + "\n")
    return directory


def _stored(tensor: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    tensor = tensor.detach().cpu()
    if dtype is not None and tensor.is_floating_point():
        tensor = tensor.to(dtype)
    return tensor.contiguous()


def read_config(directory: str | Path) -> tuple[PanSt3RConfig, dict[str, Any]]:
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; pass a directory written by `panst3r convert`")
    document = json.loads(path.read_text())
    if document.get("format") != FORMAT_NAME or document.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format {document.get('format')!r} version {document.get('format_version')!r} is not "
            f"{FORMAT_NAME!r} version {FORMAT_VERSION}; re-run `panst3r convert`"
        )
    config = from_dict(PanSt3RConfig, document["model"], where=f"{path}:model")
    config.validate()
    return config, document.get("metadata", {})


def load_checkpoint(directory: str | Path) -> LoadedModel:
    """A directory written by `save_checkpoint` -> model (eval mode), config, metadata."""
    config, metadata = read_config(directory)
    weights_path = Path(directory) / WEIGHTS_FILE
    if not weights_path.is_file():
        raise FileNotFoundError(f"{weights_path} does not exist; the checkpoint directory is incomplete")
    model = PanSt3R(config)
    weights = match_dino_key_names(load_file(str(weights_path)), model.state_dict())
    load_state_dict_strict(model, weights, str(weights_path))
    return LoadedModel(model.eval(), config, metadata)
