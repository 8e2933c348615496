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

from datasets.store.location import StoreLocation
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
    launcher sets itself."""
    for item in overrides:
        if item.split("=", 1)[0].strip() in MANAGED_KEYS:
            raise ValueError(
                f"override {item!r}: {item.split('=', 1)[0]} is set by the train flow (use --store, "
                "--run-name and --runs-dir instead)"
            )
    return load_train_config(config, overrides)


def existing_stores(stores: Sequence[str | Path]) -> list[StoreLocation]:
    """The stores a run reads: directories as absolute paths, object stores pinned to their newest snapshot
    (every rank, loader worker and resumed launch of the run then reads exactly that version, whatever
    preprocess commits meanwhile); ValueError / FileNotFoundError when none is given or one is missing."""
    if not stores:
        raise ValueError("--store: give at least one store made by `panst3r preprocess`")
    from datasets.store.queries import pinned_store  # zarr and pandas: only where a run is prepared

    return [pinned_store(store) for store in stores]


def config_label(config: str) -> str:
    """The short name of a config: the preset name, or a YAML file's stem."""
    return Path(config).stem if str(config).endswith((".yaml", ".yml")) else str(config)


def resolve_run_config(
    run_dir: Path,
    stores: Sequence[Path | StoreLocation],
    config: str,
    overrides: Sequence[str] = (),
    keep_folder_config: bool = False,
    world_size: int = 1,
) -> TrainConfig:
    """The config a launch on `run_dir` trains with: `config` + `overrides` + the managed keys, checked in full
    for a launch of `world_size` ranks (`check_launchable`). With `keep_folder_config`, a run folder that
    already holds a config.json keeps it (the overrides apply on top) instead of resolving `config` again."""
    managed = [
        f"data.stores={json.dumps([str(store) for store in stores])}",
        f"training.output_dir={json.dumps(str(run_dir))}",
    ]
    if keep_folder_config and (run_dir / CONFIG_FILE).is_file():
        data = apply_overrides(read_config(run_dir), [*overrides, *managed])
        resolved = from_dict(TrainConfig, data, where=str(run_dir / CONFIG_FILE))
    else:
        resolved = load_train_config(config, [*overrides, *managed])
    check_launchable(resolved, world_size, resuming=find_resume_checkpoint(run_dir) is not None)
    return resolved


def check_launchable(config: TrainConfig, world_size: int, resuming: bool) -> None:
    """What the typed config cannot check by itself, before any process starts (ValueError naming the key):
    the model variant is registered, an epoch holds an optimizer step for `world_size` ranks, the stores hold
    pairs of `data.split`, and the checkpoints to start from exist (unless the run resumes)."""
    from datasets.training.pair_index import build_pair_index
    from panst3r_core.engine.loop import steps_per_epoch
    from panst3r_core.model.variants import VARIANTS
    from panst3r_core.pretrained import existing_weights

    if config.model.variant not in VARIANTS:
        raise ValueError(
            f"model.variant: {config.model.variant!r} is not a model variant; valid: {', '.join(VARIANTS.names())}"
        )
    steps_per_epoch(config, world_size)
    # As the dataset parses them: a directory, or an object store's URL (which Path would mangle).
    build_pair_index([StoreLocation.parse(store) for store in config.data.stores], config.data.split)
    for key in ("chkpt", "must3r_chkpt"):
        weights = getattr(config.training, key)
        if not weights or resuming:
            continue
        existing_weights(weights, f"training.{key}")  # `shipped:NAME` -> the shipped model's folder


def write_run_config(run_dir: Path, config: TrainConfig) -> None:
    write_config(run_dir, config_to_dict(config))


@dataclass
class RunPlan:
    run_name: str
    run_dir: Path
    config_name: str
    config: TrainConfig
    stores: list[StoreLocation]
    """Absolute directories, or object stores pinned to a snapshot."""
    resume_from: Path | None


def run_folder_for(config: str, run_name: str | None, runs_dir: str | Path) -> tuple[str, Path]:
    """(run name, RUNS/train/<name>); the default name is `<config>-<date>-<time>`."""
    name = run_name or f"{config_label(config)}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"--run-name {name!r}: use a plain folder name (no '/', not starting with '.')")
    return name, (Path(runs_dir) / TRAIN_DIRNAME / name).resolve()


def prepare_run(
    stores: Sequence[str | Path],
    config: str = "synthetic_cpu",
    overrides: Sequence[str] = (),
    run_name: str | None = None,
    runs_dir: str | Path = "runs",
    world_size: int = 1,
    write: bool = True,
) -> RunPlan:
    """Check the stores and settings for a launch of `world_size` ranks, choose the run folder
    (RUNS/train/<name>, default `<config>-<date>-<time>`) and, with `write`, write the resolved config into it
    (the launcher holds the folder's lock by then: `flows.run_lock`)."""
    store_paths = existing_stores(stores)
    check_overrides(config, overrides)
    name, run_dir = run_folder_for(config, run_name, runs_dir)
    resolved = resolve_run_config(run_dir, store_paths, config, overrides, world_size=world_size)
    if write:
        write_run_config(run_dir, resolved)
    return RunPlan(
        name, run_dir, config_label(config), resolved, store_paths, find_resume_checkpoint(run_dir)
    )
