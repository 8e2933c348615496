"""A training run's resolved config and its folder: a preset (conf/train/<name>.yaml) or a YAML path, plus
`section.key=value` overrides, plus the keys the launcher owns (the stores and the run folder).

The `train` flow and the GPU benchmark both resolve and write configs here; neither Prefect nor MLflow is
imported (the GPU machines have neither).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flows.run_folder import CONFIG_FILE, read_config, write_config
from panst3r_core.config import apply_overrides, from_dict
from panst3r_core.engine.checkpointing import find_resume_checkpoint
from panst3r_core.engine.config import TrainConfig
from panst3r_core.engine.config_files import config_to_dict, load_train_config

TRAIN_DIRNAME = "train"
"""Run folders of the `train` flow live in RUNS/train/<run name>/."""
MANAGED_KEYS = ("training.output_dir", "data.stores")
"""Set by the launcher, never by the user: they would point the run somewhere else than its folder."""


def check_overrides(config: str, overrides: Sequence[str]) -> TrainConfig:
    """Resolve the config once (unknown names, keys and bad values raise ValueError) and refuse the keys the
    launcher sets itself; cheap, so the CLI calls it before starting anything."""
    for item in overrides:
        if item.split("=", 1)[0].strip() in MANAGED_KEYS:
            raise ValueError(
                f"override {item!r}: {item.split('=', 1)[0]} is set by the train flow (use --store, "
                "--run-name and --runs-dir instead)"
            )
    return load_train_config(config, overrides)


def existing_stores(stores: Sequence[str | Path]) -> list[Path]:
    """The stores as absolute paths; ValueError / FileNotFoundError when none is given or one is missing."""
    if not stores:
        raise ValueError("--store: give at least one store made by `panst3r preprocess`")
    store_paths = [Path(store).resolve() for store in stores]
    for store in store_paths:
        if not store.is_dir():
            raise FileNotFoundError(f"--store {store} does not exist; run `panst3r preprocess --store` first")
    return store_paths


def config_label(config: str) -> str:
    """The short name of a config: the preset name, or a YAML file's stem."""
    return Path(config).stem if str(config).endswith((".yaml", ".yml")) else str(config)


def resolve_run_config(
    run_dir: Path,
    stores: Sequence[Path],
    config: str,
    overrides: Sequence[str] = (),
    keep_folder_config: bool = False,
) -> TrainConfig:
    """The config a launch on `run_dir` trains with: `config` + `overrides` + the managed keys. With
    `keep_folder_config`, a run folder that already holds a config.json keeps it (the overrides apply on top)
    instead of resolving `config` again."""
    managed = [
        f"data.stores={json.dumps([str(store) for store in stores])}",
        f"training.output_dir={json.dumps(str(run_dir))}",
    ]
    if keep_folder_config and (run_dir / CONFIG_FILE).is_file():
        data = apply_overrides(read_config(run_dir), [*overrides, *managed])
        return from_dict(TrainConfig, data, where=str(run_dir / CONFIG_FILE))
    return load_train_config(config, [*overrides, *managed])


def write_run_config(run_dir: Path, config: TrainConfig) -> None:
    write_config(run_dir, config_to_dict(config))


@dataclass
class RunPlan:
    run_name: str
    run_dir: Path
    config_name: str
    config: TrainConfig
    stores: list[Path]
    resume_from: Path | None


def prepare_run(
    stores: Sequence[str | Path],
    config: str = "synthetic_cpu",
    overrides: Sequence[str] = (),
    run_name: str | None = None,
    runs_dir: str | Path = "runs",
) -> RunPlan:
    """Check the stores and overrides, choose the run folder (RUNS/train/<name>, default
    `<config>-<date>-<time>`) and write the resolved config into it."""
    store_paths = existing_stores(stores)
    check_overrides(config, overrides)
    label = config_label(config)
    name = run_name or f"{label}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"--run-name {name!r}: use a plain folder name (no '/', not starting with '.')")
    run_dir = (Path(runs_dir) / TRAIN_DIRNAME / name).resolve()
    resolved = resolve_run_config(run_dir, store_paths, config, overrides)
    write_run_config(run_dir, resolved)
    return RunPlan(name, run_dir, label, resolved, store_paths, find_resume_checkpoint(run_dir))
