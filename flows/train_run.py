"""The steps of a training run, as plain functions (the Prefect flow `flows.train` wires them together).

Run folder `RUNS/train/<run name>/`: config.json (the resolved TrainConfig the workers read) and config.yaml,
metrics.jsonl, checkpoint-last / checkpoint-<epoch> / checkpoint-final (engine format, resumable),
model-final (inference format), result.json, torchrun.log. Re-using a run name continues that run from its
checkpoint-last.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets.training.store_fingerprint import stores_fingerprint
from flows.mlflow_tracking import (
    ARTIFACTS_DIRNAME,
    RUN_ID_ENV,
    TRACKING_URI_ENV,
    default_tracking_uri,
    ensure_experiment,
    flatten,
    log_params,
)
from flows.torchrun_worker import CONFIG_FILE, NCCL_SAFE_ENV, RESULT_FILE
from panst3r_core.engine.checkpointing import find_resume_checkpoint
from panst3r_core.engine.config import TrainConfig
from panst3r_core.engine.config_files import config_to_dict, config_to_yaml, load_train_config

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAIN_DIRNAME = "train"
LOG_FILE = "torchrun.log"
# Set by the flow, never by the user: they would point the run somewhere else than its folder.
MANAGED_KEYS = ("training.output_dir", "data.stores")


@dataclass
class RunPlan:
    run_name: str
    run_dir: Path
    config_name: str
    config: TrainConfig
    stores: list[Path]
    resume_from: Path | None


def check_overrides(config: str, overrides: Sequence[str]) -> TrainConfig:
    """Resolve the config once (unknown names, keys and bad values raise ValueError) and refuse the keys the
    flow sets itself; cheap, so the CLI calls it before starting anything."""
    for item in overrides:
        if item.split("=", 1)[0].strip() in MANAGED_KEYS:
            raise ValueError(
                f"override {item!r}: {item.split('=', 1)[0]} is set by the train flow (use --store, "
                "--run-name and --runs-dir instead)"
            )
    return load_train_config(config, overrides)


def prepare_run(
    stores: Sequence[str | Path],
    config: str = "synthetic_cpu",
    overrides: Sequence[str] = (),
    run_name: str | None = None,
    runs_dir: str | Path = "runs",
) -> RunPlan:
    """Resolve the config (name or YAML + overrides; unknown keys are an error), choose the run folder and
    write config.json / config.yaml into it."""
    if not stores:
        raise ValueError("--store: give at least one store made by `panst3r preprocess`")
    store_paths = [Path(store).resolve() for store in stores]
    for store in store_paths:
        if not store.is_dir():
            raise FileNotFoundError(f"--store {store} does not exist; run `panst3r preprocess --store` first")
    check_overrides(config, overrides)
    config_label = Path(config).stem if str(config).endswith((".yaml", ".yml")) else str(config)
    name = run_name or f"{config_label}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"--run-name {name!r}: use a plain folder name (no '/', not starting with '.')")
    run_dir = (Path(runs_dir) / TRAIN_DIRNAME / name).resolve()
    managed = [f"data.stores={json.dumps([str(s) for s in store_paths])}", f"training.output_dir={run_dir}"]
    resolved = load_train_config(config, [*overrides, *managed])
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(json.dumps(config_to_dict(resolved), indent=2) + "\n")
    (run_dir / "config.yaml").write_text(config_to_yaml(resolved))
    return RunPlan(name, run_dir, config_label, resolved, store_paths, find_resume_checkpoint(run_dir))


def git_commit(repo: Path = REPO_ROOT) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


@dataclass
class MlflowRun:
    tracking_uri: str
    experiment_id: str
    run_id: str


def start_mlflow_run(
    plan: RunPlan,
    experiment: str,
    tracking_uri: str | None,
    runs_dir: str | Path,
    nproc_per_node: int,
) -> MlflowRun:
    """Create the MLflow run: every config value as a param; store, code and launch facts as tags."""
    from mlflow.tracking import MlflowClient

    uri = tracking_uri or default_tracking_uri(runs_dir)
    client = MlflowClient(tracking_uri=uri)
    artifact_root = Path(runs_dir) / ARTIFACTS_DIRNAME if uri.startswith("sqlite:") else None
    experiment_id = ensure_experiment(client, experiment, artifact_root)
    fingerprint = stores_fingerprint(plan.stores)
    tags = {
        "mlflow.runName": plan.run_name,
        "run_dir": str(plan.run_dir),
        "config_name": plan.config_name,
        "store.schema_version": fingerprint["schema_version"],
        "store.content_hash": fingerprint["content_hash"],
        "stores": ",".join(str(s) for s in plan.stores),
        "text_embeddings": plan.config.model.text_embeddings,
        "nproc_per_node": str(nproc_per_node),
        "resumed_from": str(plan.resume_from) if plan.resume_from else "",
    }
    commit = git_commit()
    if commit:
        tags["git_commit"] = commit
    run = client.create_run(experiment_id, tags=tags, run_name=plan.run_name)
    params = flatten(config_to_dict(plan.config))
    params["launch.nproc_per_node"] = str(nproc_per_node)
    params["launch.config"] = plan.config_name
    log_params(client, run.info.run_id, params)
    return MlflowRun(uri, experiment_id, run.info.run_id)


def finish_mlflow_run(
    tracking: MlflowRun, plan: RunPlan, result: dict[str, Any] | None, failed: bool
) -> None:
    """Artifacts (resolved config, final checkpoint paths, run result) and the run status."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking.tracking_uri)
    for name in (CONFIG_FILE, "config.yaml"):
        path = plan.run_dir / name
        if path.is_file():
            client.log_artifact(tracking.run_id, str(path), artifact_path="config")
    if result is not None:
        client.set_tag(tracking.run_id, "final_checkpoint", result["final_checkpoint"])
        client.set_tag(tracking.run_id, "exported_model", result["exported_model"])
        pointer = plan.run_dir / "final_checkpoint.json"
        pointer.write_text(json.dumps(result, indent=2) + "\n")
        client.log_artifact(tracking.run_id, str(pointer), artifact_path="checkpoint")
    client.set_terminated(tracking.run_id, status="FAILED" if failed else "FINISHED")


def torchrun_command(run_dir: Path, nproc_per_node: int) -> list[str]:
    """`torchrun --standalone --nproc-per-node N -m flows.torchrun_worker --run-dir DIR` of this venv."""
    if nproc_per_node < 1:
        raise ValueError(f"--nproc-per-node must be >= 1, got {nproc_per_node}")
    launcher = Path(sys.executable).with_name("torchrun")
    head = [str(launcher)] if launcher.is_file() else [sys.executable, "-m", "torch.distributed.run"]
    return [
        *head,
        "--standalone",
        "--nproc-per-node",
        str(nproc_per_node),
        "-m",
        "flows.torchrun_worker",
        "--run-dir",
        str(run_dir),
    ]


def worker_environment(tracking: MlflowRun | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(NCCL_SAFE_ENV)
    env["PYTHONUNBUFFERED"] = "1"
    if tracking is not None:
        env[RUN_ID_ENV] = tracking.run_id
        env[TRACKING_URI_ENV] = tracking.tracking_uri
    return env


def launch_torchrun(
    run_dir: Path,
    nproc_per_node: int,
    env: dict[str, str],
    on_line: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run torchrun (cwd = repository root, never os.chdir) and stream every output line to `on_line`
    (and to run_dir/torchrun.log); returns the workers' result.json. RuntimeError with the last lines
    when torchrun fails."""
    command = torchrun_command(run_dir, nproc_per_node)
    tail: deque[str] = deque(maxlen=30)
    stale = run_dir / RESULT_FILE
    stale.unlink(missing_ok=True)
    with open(run_dir / LOG_FILE, "a") as log_file:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.rstrip("\n")
            tail.append(line)
            log_file.write(raw)
            on_line(line)
        code = process.wait()
    if code != 0:
        raise RuntimeError(
            f"torchrun exited with code {code} (full log: {run_dir / LOG_FILE}); last lines:\n"
            + "\n".join(tail)
        )
    if not stale.is_file():
        raise RuntimeError(f"torchrun finished but wrote no {stale}; see {run_dir / LOG_FILE}")
    return json.loads(stale.read_text())


def loss_summary(run_dir: Path, key: str = "panoptic_loss") -> dict[str, float]:
    """First and last logged value of `key` in metrics.jsonl (all runs appended to this folder)."""
    path = run_dir / "metrics.jsonl"
    values = []
    if path.is_file():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record.get("kind") == "log" and key in record:
                values.append(float(record[key]))
    return {"first_loss": values[0], "last_loss": values[-1]} if values else {}
