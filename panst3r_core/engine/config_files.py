"""Training configs in conf/train/: selected by name (or a YAML path), overridden by `key=value` pairs.

The presets ship as data of the `conf` package and are found through importlib.resources, the same way in a
checkout and in an installed wheel.

A file may start with `inherits: <name>` to take another file's values and change a few; the result is
merged section by section, then overrides are applied, then the typed `TrainConfig` is built (unknown keys
are an error naming the valid keys).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from panst3r_core.config import apply_overrides, from_dict
from panst3r_core.engine.config import TrainConfig

PRESETS_PACKAGE = "conf"
TRAIN_PRESETS = "train"


def presets_dir() -> Path:
    """The folder of the training presets (`conf/train`)."""
    return Path(str(importlib.resources.files(PRESETS_PACKAGE).joinpath(TRAIN_PRESETS)))


CONFIG_DIR = presets_dir()
INHERIT_KEY = "inherits"


def available_configs(config_dir: Path = CONFIG_DIR) -> list[str]:
    return sorted(path.stem for path in config_dir.glob("*.yaml"))


def _config_path(name_or_path: str | Path, config_dir: Path) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        if not candidate.is_file():
            raise FileNotFoundError(f"training config {candidate} does not exist")
        return candidate
    path = config_dir / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ValueError(
            f"unknown training config {str(name_or_path)!r}; available: {', '.join(available_configs(config_dir))} "
            "(or give a path to a .yaml file)"
        )
    return path


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_config_dict(
    name_or_path: str | Path, config_dir: Path = CONFIG_DIR, _seen: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The plain dict of a config file with its `inherits` chain resolved."""
    path = _config_path(name_or_path, config_dir)
    if str(path) in _seen:
        raise ValueError(f"{path}: `{INHERIT_KEY}` forms a cycle ({' -> '.join(_seen)})")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of sections (model, data, criterion, training)")
    parent = data.pop(INHERIT_KEY, None)
    if parent is None:
        return data
    return _deep_merge(read_config_dict(parent, path.parent, (*_seen, str(path))), data)


def load_train_config(
    name_or_path: str | Path = "base", overrides: Sequence[str] = (), config_dir: Path = CONFIG_DIR
) -> TrainConfig:
    """Resolve a named config (or YAML path) plus `section.key=value` overrides into a TrainConfig."""
    data = apply_overrides(read_config_dict(name_or_path, config_dir), list(overrides))
    return from_dict(TrainConfig, data, where=f"training config {name_or_path}")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain nested dict (lists, no tuples): safe for YAML/JSON and for `from_dict` again."""
    return _plain(dataclasses.asdict(config))
