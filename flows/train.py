"""Prefect flow `train`: resolve the config, record the run in MLflow, launch torchrun, stream its logs.

On several nodes each node runs this flow with its `--node-rank`; node 0 does everything above, the others
check the same settings, launch their torchrun and write nothing of the run folder's shared files (see
`flows.run_folder.TorchrunLaunch`). Import this module only after `flows.prefect_env.configure_prefect_env`
(Prefect reads settings at import).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import TerminationSignal

from flows.run_config import TRAIN_DIRNAME, RunPlan, prepare_run, run_folder_for
from flows.run_folder import (
    LaunchError,
    TorchrunLaunch,
    finished_result,
    launch,
    loss_summary,
    timing_summary,
)
from flows.run_lock import hold_run_folder
from flows.train_reuse import reuse_run_name
from flows.train_run import MlflowRun, finish_mlflow_run, start_mlflow_run


def retry_launch_failures(task, task_run, state) -> bool:
    """Retry a torchrun that failed and may succeed the second time (the gloo teardown race of
    environment.md section 7); never an interrupt, a timeout, a busy run folder or bad settings."""
    try:
        error = state.result(raise_on_failure=False)
    except BaseException:  # noqa: BLE001 - an unreadable outcome is no reason to launch again
        return False
    return isinstance(error, LaunchError) and error.retryable


@task(
    name="torchrun",
    retries=1,
    retry_delay_seconds=2,
    retry_condition_fn=retry_launch_failures,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def torchrun_task(
    run_dir: str, nproc_per_node: int, tracking: MlflowRun | None, nodes: dict[str, Any]
) -> dict[str, Any]:
    """One torchrun launch; a retry resumes from checkpoint-last. The launch is described here, not passed
    in, so that its environment never lands in Prefect's recorded task parameters. `nodes`: the
    TorchrunLaunch fields of a multi-node launch (nnodes, node_rank, rdzv_endpoint, max_restarts)."""
    logger = get_run_logger()
    env = tracking.worker_env() if tracking is not None else {}
    spec = TorchrunLaunch(Path(run_dir), nproc_per_node, env=env, **nodes)
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
    nnodes: int = 1,
    node_rank: int = 0,
    rdzv_endpoint: str | None = None,
    max_restarts: int = 0,
) -> dict[str, Any]:
    """Train on `store` (one path or several) with conf/train/<config>.yaml + `overrides` (key=value);
    `run_name` of an existing run continues it. With `reuse`, the run is named after the store content and
    settings (unless `run_name` is given), and a finished run of that name is returned instead of training
    again (flows.train_reuse). With `nnodes` > 1 this is node `node_rank` of a c10d rendezvous at
    `rdzv_endpoint` (node 0's HOST:PORT). Returns where the run, checkpoints and MLflow run are (on nodes
    other than 0: what this node ran)."""
    logger = get_run_logger()
    stores = [store] if isinstance(store, str) else list(store)
    runs_path = Path(runs_dir).resolve()
    nodes = {
        "nnodes": nnodes,
        "node_rank": node_rank,
        "rdzv_endpoint": rdzv_endpoint,
        "max_restarts": max_restarts,
    }
    if nnodes > 1 and not run_name and not reuse:
        raise ValueError("--run-name: a multi-node run needs the same --run-name on every node")
    if reuse:
        run_name = run_name or reuse_run_name(stores, config, list(overrides or []), nproc_per_node * nnodes)
        reused = _reused_run(runs_path / TRAIN_DIRNAME / run_name)
        if reused is not None:
            return reused
    name, run_dir = run_folder_for(config, run_name, runs_path)
    spec = TorchrunLaunch(run_dir, nproc_per_node, **nodes)
    spec.validate()
    # Held from before config.json is written until the launch has ended: a second launcher on this folder
    # is refused instead of rewriting the config under a running one.
    with hold_run_folder(run_dir, spec.lock_name):
        plan = prepare_run(
            stores,
            config,
            list(overrides or []),
            name,
            runs_path,
            spec.world_size,
            write=spec.writes_shared_files,
        )
        if not spec.writes_shared_files:
            return _join_as_node(plan, nproc_per_node, nodes)
        logger.info(
            "run %s in %s (%s); %s",
            plan.run_name,
            plan.run_dir,
            plan.config_name,
            f"resuming from {plan.resume_from}" if plan.resume_from else "starting from scratch",
        )
        tracking = start_mlflow_run(plan, experiment, tracking_uri, runs_path, nproc_per_node, nnodes)
        logger.info("MLflow run %s in experiment %s (%s)", tracking.run_id, experiment, tracking.tracking_uri)
        result = _launch_recorded(plan, tracking, nproc_per_node, nodes)
    summary = {
        "run_name": plan.run_name,
        "run_dir": str(plan.run_dir),
        "resumed_from": str(plan.resume_from) if plan.resume_from else None,
        "mlflow_run_id": tracking.run_id,
        "mlflow_experiment_id": tracking.experiment_id,
        "tracking_uri": tracking.tracking_uri,
        **result,
        **loss_summary(plan.run_dir),
        **timing_summary(plan.run_dir),
        "reused": False,
    }
    logger.info("training done: %s", summary)
    return summary


def _reused_run(run_dir: Path) -> dict[str, Any] | None:
    """The summary of a finished run in `run_dir` (same store content and settings), else None."""
    previous = finished_result(run_dir)
    if previous is None:
        return None
    get_run_logger().info(
        "reusing run %s: it trained on the same store content with the same settings", run_dir.name
    )
    return {"run_name": run_dir.name, "run_dir": str(run_dir), "reused": True, **previous}


def _join_as_node(plan: RunPlan, nproc_per_node: int, nodes: dict[str, Any]) -> dict[str, Any]:
    """A node other than 0: its torchrun joins node 0's rendezvous; nothing recorded, no retry of its own."""
    get_run_logger().info(
        "node %d of %d for run %s (%s)", nodes["node_rank"], nodes["nnodes"], plan.run_name, plan.run_dir
    )
    result = torchrun_task.with_options(retries=0)(str(plan.run_dir), nproc_per_node, None, nodes)
    return {"run_name": plan.run_name, "run_dir": str(plan.run_dir), "mlflow_run_id": None, **result}


def _launch_recorded(
    plan: RunPlan, tracking: MlflowRun, nproc_per_node: int, nodes: dict[str, Any]
) -> dict[str, Any]:
    """The launch, with the MLflow run's status following its outcome (KILLED when interrupted). On several
    nodes torchrun's own --max-restarts restarts every node together; a retry of one node's task would not."""
    task = torchrun_task if nodes["nnodes"] == 1 else torchrun_task.with_options(retries=0)
    try:
        result = task(str(plan.run_dir), nproc_per_node, tracking, nodes)
    except (KeyboardInterrupt, TerminationSignal):  # Ctrl-C; SIGTERM inside a flow run
        finish_mlflow_run(tracking, plan, None, status="KILLED")
        raise
    except BaseException:
        finish_mlflow_run(tracking, plan, None, status="FAILED")
        raise
    finish_mlflow_run(tracking, plan, result)
    return result
