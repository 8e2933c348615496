"""The MLflow record of a training run (the Prefect flow `flows.train` wires it around the launch).

One MLflow run per flow run: every resolved config value as a param, store / code / launch facts as tags;
at the end the config files and the final checkpoint pointer as artifacts, and the run's status.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets.training.store_fingerprint import stores_fingerprint
from flows import mlflow_names as names
from flows.mlflow_tracking import (
    ARTIFACTS_DIRNAME,
    default_tracking_uri,
    ensure_experiment,
    flatten,
    log_params,
)
from flows.run_config import RunPlan
from flows.run_folder import CONFIG_FILE, CONFIG_YAML_FILE, FINAL_CHECKPOINT_FILE
from panst3r_core.engine.config_files import config_to_dict

REPO_ROOT = Path(__file__).resolve().parents[1]


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

    def worker_env(self) -> dict[str, str]:
        """The environment that makes the torchrun workers log into this run."""
        return {names.RUN_ID_ENV: self.run_id, names.TRACKING_URI_ENV: self.tracking_uri}


def start_mlflow_run(
    plan: RunPlan,
    experiment: str,
    tracking_uri: str | None,
    runs_dir: str | Path,
    nproc_per_node: int,
    nnodes: int = 1,
) -> MlflowRun:
    """Create the MLflow run: every config value as a param; store, code and launch facts as tags. Runs of
    the same folder still marked RUNNING were orphaned (the caller holds the folder's lock): marked KILLED."""
    from mlflow.tracking import MlflowClient

    uri = tracking_uri or default_tracking_uri(runs_dir)
    client = MlflowClient(tracking_uri=uri)
    artifact_root = Path(runs_dir) / ARTIFACTS_DIRNAME if uri.startswith("sqlite:") else None
    experiment_id = ensure_experiment(client, experiment, artifact_root)
    close_orphaned_runs(client, experiment_id, plan.run_dir)
    fingerprint = stores_fingerprint(plan.stores)
    tags = {
        names.RUN_NAME_TAG: plan.run_name,
        names.RUN_DIR_TAG: str(plan.run_dir),
        names.CONFIG_NAME_TAG: plan.config_name,
        names.STORE_SCHEMA_TAG: fingerprint["schema_version"],
        names.STORE_CONTENT_TAG: fingerprint["content_hash"],
        names.STORE_VERSION_TAG: fingerprint["version"],
        names.STORE_VERSION_KIND_TAG: fingerprint["version_kind"],
        names.STORES_TAG: ",".join(str(s) for s in plan.stores),
        names.TEXT_EMBEDDINGS_TAG: plan.config.model.text_embeddings,
        names.NPROC_TAG: str(nproc_per_node),
        names.RESUMED_FROM_TAG: str(plan.resume_from) if plan.resume_from else "",
    }
    commit = git_commit()
    if commit:
        tags[names.GIT_COMMIT_TAG] = commit
    run = client.create_run(experiment_id, tags=tags, run_name=plan.run_name)
    params = flatten(config_to_dict(plan.config))
    params[names.LAUNCH_NPROC_PARAM] = str(nproc_per_node)
    params[names.LAUNCH_NNODES_PARAM] = str(nnodes)
    params[names.LAUNCH_CONFIG_PARAM] = plan.config_name
    log_params(client, run.info.run_id, params)
    return MlflowRun(uri, experiment_id, run.info.run_id)


def close_orphaned_runs(client, experiment_id: str, run_dir: Path) -> None:
    """Mark KILLED the runs of `run_dir` still RUNNING: launchers killed before they could say how they ended
    (normally torchrun's agent marks them, `flows.torchrun_agent`; not when it was killed at once too)."""
    running = client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'")
    for run in running:
        if run.data.tags.get(names.RUN_DIR_TAG) == str(run_dir):
            client.set_terminated(run.info.run_id, status="KILLED")


def finish_mlflow_run(
    tracking: MlflowRun, plan: RunPlan, result: dict[str, Any] | None, status: str = "FINISHED"
) -> None:
    """Artifacts (resolved config, final checkpoint paths, run result) and the run's status: FINISHED,
    FAILED, or KILLED (interrupted)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking.tracking_uri)
    for name in (CONFIG_FILE, CONFIG_YAML_FILE):
        path = plan.run_dir / name
        if path.is_file():
            client.log_artifact(tracking.run_id, str(path), artifact_path="config")
    if result is not None:
        client.set_tag(tracking.run_id, names.FINAL_CHECKPOINT_TAG, result["final_checkpoint"])
        client.set_tag(tracking.run_id, names.EXPORTED_MODEL_TAG, result["exported_model"])
        pointer = plan.run_dir / FINAL_CHECKPOINT_FILE
        pointer.write_text(json.dumps(result, indent=2) + "\n")
        client.log_artifact(tracking.run_id, str(pointer), artifact_path="checkpoint")
    client.set_terminated(tracking.run_id, status=status)
