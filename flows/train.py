"""Prefect flow `train`: resolve the config, record the run in MLflow, launch torchrun, stream its logs.

Import this module only after `flows.prefect_env.configure_prefect_env` (Prefect reads settings at import).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.run_config import TRAIN_DIRNAME, prepare_run
from flows.run_folder import LaunchDataError, TorchrunLaunch, finished_result, launch, loss_summary
from flows.train_reuse import reuse_run_name
from flows.train_run import MlflowRun, finish_mlflow_run, start_mlflow_run


def _retry_unless_bad_data(task, task_run, state) -> bool:
    """A launch that stopped on damaged store data (LaunchDataError naming it) would fail the same way."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - an unreadable result: retry as before
        return True
    return not isinstance(exc, LaunchDataError)


@task(
    name="torchrun",
    retries=1,
    retry_delay_seconds=2,
    retry_condition_fn=_retry_unless_bad_data,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def torchrun_task(run_dir: str, nproc_per_node: int, tracking: MlflowRun) -> dict[str, Any]:
    """One torchrun launch; a retry resumes from checkpoint-last (the gloo teardown race of
    environment.md section 7 is the failure this retry is for). The launch is described here, not passed
    in, so that its environment never lands in Prefect's recorded task parameters."""
    logger = get_run_logger()
    spec = TorchrunLaunch(Path(run_dir), nproc_per_node, env=tracking.worker_env())
    return launch(spec, on_line=logger.info)


@flow(name="train")
def train(
    store: str | list[str],
    config: str = "synthetic_cpu",
    overrides: list[str] | None = None,
    nproc_per_node: int = 1,
    run_name: str | None = None,
    experiment: str = "panst3r-train",
    tracking_uri: str | None = None,
    runs_dir: str = "runs",
    reuse: bool = False,
) -> dict[str, Any]:
    """Train on `store` (one path or several) with conf/train/<config>.yaml + `overrides` (key=value);
    `run_name` of an existing run continues it. With `reuse`, the run is named after the store content and
    settings (unless `run_name` is given), and a finished run of that name is returned instead of training
    again (flows.train_reuse). Returns where the run, checkpoints and MLflow run are."""
    logger = get_run_logger()
    stores = [store] if isinstance(store, str) else list(store)
    runs_path = Path(runs_dir).resolve()
    if reuse:
        run_name = run_name or reuse_run_name(stores, config, list(overrides or []), nproc_per_node)
        previous = finished_result(runs_path / TRAIN_DIRNAME / run_name)
        if previous is not None:
            logger.info(
                "reusing run %s: it trained on the same store content with the same settings", run_name
            )
            return {
                "run_name": run_name,
                "run_dir": str(runs_path / TRAIN_DIRNAME / run_name),
                "reused": True,
                **previous,
            }
    plan = prepare_run(stores, config, list(overrides or []), run_name, runs_path)
    logger.info(
        "run %s in %s (%s); %s",
        plan.run_name,
        plan.run_dir,
        plan.config_name,
        f"resuming from {plan.resume_from}" if plan.resume_from else "starting from scratch",
    )
    tracking = start_mlflow_run(plan, experiment, tracking_uri, runs_path, nproc_per_node)
    logger.info("MLflow run %s in experiment %s (%s)", tracking.run_id, experiment, tracking.tracking_uri)
    try:
        result = torchrun_task(str(plan.run_dir), nproc_per_node, tracking)
    except BaseException:
        finish_mlflow_run(tracking, plan, None, failed=True)
        raise
    finish_mlflow_run(tracking, plan, result, failed=False)
    summary = {
        "run_name": plan.run_name,
        "run_dir": str(plan.run_dir),
        "resumed_from": str(plan.resume_from) if plan.resume_from else None,
        "mlflow_run_id": tracking.run_id,
        "mlflow_experiment_id": tracking.experiment_id,
        "tracking_uri": tracking.tracking_uri,
        **result,
        **loss_summary(plan.run_dir),
        "reused": False,
    }
    logger.info("training done: %s", summary)
    return summary
