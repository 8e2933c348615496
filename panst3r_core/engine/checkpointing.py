"""Training checkpoints in our own format, written atomically.

A checkpoint is a directory:

    model.safetensors    model weights (data only, no pickled code)
    config.json          for a PanSt3R model: its architecture config and metadata in the format of
                         `panst3r_core.checkpoint.ours`, so `predict` / `evaluate` load the folder directly
    train_config.json    the resolved TrainConfig
    training_state.pt    optimizer, grad scaler, sampler position and every rank's RNG states
                         (tensors and plain containers only: loads with `weights_only=True`)
    meta.json            progress (epoch, batch, optimizer step); written last, so its presence marks a
                         complete checkpoint

It is written under `<name>.tmp` and renamed into place; the previous version is moved to `<name>.old` for
the instant between the two renames, and `find_resume_checkpoint` falls back to it if a crash hits there.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_model
from torch import nn

from panst3r_core.checkpoint import ours as inference_format
from panst3r_core.checkpoint.official import match_dino_key_names
from panst3r_core.model.panst3r import PanSt3R

LAST = "checkpoint-last"
FINAL = "checkpoint-final"
MODEL_FILE = inference_format.WEIGHTS_FILE
TRAIN_CONFIG_FILE = "train_config.json"
STATE_FILE = "training_state.pt"
META_FILE = "meta.json"
FORMAT_NAME = "panst3r-train-checkpoint"
FORMAT_VERSION = 1

logger = logging.getLogger(__name__)


@dataclass
class Progress:
    """Where training continues: `batch` batches of `epoch` are done, `global_step` optimizer steps in all."""

    epoch: int = 0
    batch: int = 0
    global_step: int = 0


def capture_rng_state() -> dict[str, Any]:
    """Python, numpy, torch CPU and (when present) CUDA generator states, as tensors and plain containers."""
    version, internal, gauss = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": numpy_state["bit_generator"],
            "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_directory(directory: Path) -> None:
    for path in directory.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(final: Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_dir)` then move tmp_dir to `final`, replacing any previous version."""
    final = Path(final)
    tmp = final.with_name(final.name + ".tmp")
    old = final.with_name(final.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    _fsync_directory(tmp)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_checkpoint(
    directory: Path,
    model: nn.Module,
    config: dict[str, Any],
    progress: Progress,
    training_state: dict[str, Any] | None = None,
    model_metadata: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint directory. `training_state` (optimizer, scaler, sampler, rng) is omitted for
    weights-only checkpoints such as checkpoint-final; `model_metadata` (class names, text-embedding
    backend, ...) goes into a PanSt3R model's inference config.json."""

    def write(tmp: Path) -> None:
        if isinstance(model, PanSt3R):
            metadata = {
                **(model_metadata or {}),
                "epoch": progress.epoch,
                "global_step": progress.global_step,
            }
            inference_format.save_checkpoint(model, tmp, metadata)
        else:
            save_model(model, str(tmp / MODEL_FILE))
        _write_json(tmp / TRAIN_CONFIG_FILE, config)
        if training_state is not None:
            torch.save(training_state, tmp / STATE_FILE)
        meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **asdict(progress)}
        _write_json(tmp / META_FILE, meta)

    return write_atomically(directory, write)


def copy_checkpoint(source: Path, destination: Path) -> Path:
    """Atomically copy a complete checkpoint directory (e.g. checkpoint-last -> checkpoint-10)."""

    def write(tmp: Path) -> None:
        for item in sorted(Path(source).iterdir(), key=lambda p: p.name == META_FILE):  # meta last
            shutil.copy2(item, tmp / item.name)

    return write_atomically(destination, write)


def is_complete(directory: Path) -> bool:
    return (Path(directory) / META_FILE).is_file() and (Path(directory) / MODEL_FILE).is_file()


def find_resume_checkpoint(output_dir: str | Path) -> Path | None:
    """The checkpoint to auto-resume from: checkpoint-last, or its `.old` copy if a crash interrupted the
    swap; None when neither is complete (a fresh run)."""
    output_dir = Path(output_dir)
    for candidate in (output_dir / LAST, output_dir / (LAST + ".old")):
        if candidate.is_dir() and candidate.joinpath(STATE_FILE).is_file() and is_complete(candidate):
            return candidate
    return None


def read_meta(directory: Path) -> dict[str, Any]:
    path = Path(directory) / META_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a complete checkpoint (meta.json missing)")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT_NAME or meta.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format {meta.get('format')!r} version {meta.get('version')!r} is not "
            f"{FORMAT_NAME!r} version {FORMAT_VERSION}"
        )
    return meta


def read_progress(directory: Path) -> Progress:
    meta = read_meta(directory)
    return Progress(epoch=int(meta["epoch"]), batch=int(meta["batch"]), global_step=int(meta["global_step"]))


def read_training_state(directory: Path) -> dict[str, Any]:
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; this checkpoint holds weights only and cannot be resumed")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_weights(
    model: nn.Module, source: str | Path, strict: bool = True, only: Sequence[str] | None = None
) -> tuple[list[str], list[str]]:
    """Load our-format weights (a checkpoint directory or a .safetensors file) into `model`.

    `only`: submodule prefixes (e.g. `must3r_encoder`) to load; the file's other weights are ignored and
    the model's other weights are left as they are, while every weight under these prefixes must be there.
    Returns (missing, unexpected) key lists; with strict=True either being non-empty raises ValueError.
    """
    path = Path(source)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no model weights here (expected a checkpoint directory or .safetensors)"
        )
    # Our format stores DINOv2 keys under transformers-5 names; the installed release may name them otherwise.
    weights = match_dino_key_names(load_file(str(path)), model.state_dict().keys())
    if only is not None:
        return _load_submodules(model, weights, tuple(f"{prefix}." for prefix in only), path)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if strict and (missing or unexpected):
        raise ValueError(
            f"{path}: weights do not fit the model: missing {sorted(missing)[:10]} "
            f"({len(missing)} in all), unexpected {sorted(unexpected)[:10]} ({len(unexpected)} in all); "
            "was it written for another model variant?"
        )
    if missing or unexpected:
        logger.warning("%s: %d missing and %d unexpected keys", path, len(missing), len(unexpected))
    return list(missing), list(unexpected)


def _load_submodules(
    model: nn.Module, weights: dict[str, torch.Tensor], prefixes: tuple[str, ...], path: Path
) -> tuple[list[str], list[str]]:
    own = model.state_dict()
    wanted = {key for key in own if key.startswith(prefixes)}
    selected = {key: value for key, value in weights.items() if key.startswith(prefixes)}
    missing = sorted(wanted - selected.keys())
    unexpected = sorted(selected.keys() - wanted)
    resized = sorted(k for k in wanted & selected.keys() if own[k].shape != selected[k].shape)
    if missing or unexpected or resized:
        raise ValueError(
            f"{path}: the {', '.join(p.rstrip('.') for p in prefixes)} weights do not fit the model: missing "
            f"{missing[:10]} ({len(missing)} in all), unexpected {unexpected[:10]} ({len(unexpected)} in all), "
            f"other shapes {resized[:10]} ({len(resized)} in all); was it written for another model variant?"
        )
    model.load_state_dict(selected, strict=False)
    return [], []
