"""MLflow helpers shared by the `train` flow (creates and closes runs) and the torchrun worker (logs metrics).

Imports no Prefect: the torchrun worker uses it. With the default sqlite backend MLflow would put artifacts
under `./mlruns` relative to whatever the cwd is (environment.md section 5), so every experiment gets an
absolute `file://` artifact location under the runs folder.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from flows.mlflow_names import (
    EPOCH_METRIC_PREFIX,
    LAST_CHECKPOINT_TAG,
    RUN_ID_ENV,
    TRACKING_URI_ENV,
    TRAIN_METRIC_PREFIX,
    throughput_metric,
)
from panst3r_core.engine.callbacks import IterationRecord, TrainCallback

log = logging.getLogger(__name__)

DB_NAME = "mlflow.db"
ARTIFACTS_DIRNAME = "mlartifacts"
_BATCH = 100  # MLflow accepts at most 100 params and 1000 metrics per log_batch


def default_tracking_uri(runs_dir: str | Path) -> str:
    """sqlite database `runs_dir/mlflow.db`, as an absolute URI (independent of the cwd)."""
    return f"sqlite:///{(Path(runs_dir) / DB_NAME).resolve()}"


def ensure_experiment(client: MlflowClient, name: str, artifact_root: str | Path | None) -> str:
    """The experiment's id, creating it (artifacts under `artifact_root/<name>` as a file URI) if absent."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if artifact_root is not None:
        directory = (Path(artifact_root) / name).resolve()
        directory.mkdir(parents=True, exist_ok=True)
        location = directory.as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:
        # Another process created it in the meantime.
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> {"section.key": "value"} with lists and None as text (MLflow params are strings)."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


def log_params(client: MlflowClient, run_id: str, params: Mapping[str, str]) -> None:
    items = [Param(key, value[:6000]) for key, value in sorted(params.items())]
    for start in range(0, len(items), _BATCH):
        client.log_batch(run_id, params=items[start : start + _BATCH])


def log_metrics(client: MlflowClient, run_id: str, metrics: Mapping[str, float], step: int) -> None:
    now = int(time.time() * 1000)
    items = [Metric(key, float(value), now, int(step)) for key, value in sorted(metrics.items())]
    for start in range(0, len(items), 1000):
        client.log_batch(run_id, metrics=items[start : start + 1000])


@contextmanager
def run_status_on_exit(client: MlflowClient, run_id: str) -> Iterator[None]:
    """Close the run when the block ends: FINISHED, or FAILED when it raises (Ctrl-C included, so that no
    run stays RUNNING in the UI)."""
    try:
        yield
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")


def run_from_environment() -> tuple[MlflowClient, str] | None:
    """(client, run id) when the launcher passed MLFLOW_RUN_ID and MLFLOW_TRACKING_URI, else None."""
    run_id = os.environ.get(RUN_ID_ENV)
    uri = os.environ.get(TRACKING_URI_ENV)
    if not run_id or not uri:
        return None
    return MlflowClient(tracking_uri=uri), run_id


class MlflowMetricsCallback(TrainCallback):
    """Rank 0: every logged window (each loss term, lr, fractional epoch) under `train/`, per-epoch means
    under `epoch/`, checkpoint paths as tags. A logging failure is a warning, never a training failure."""

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client = client
        self.run_id = run_id

    def _safely(self, what: str, call, *args) -> None:
        try:
            call(*args)
        except Exception as exc:  # noqa: BLE001 - metrics must not stop a training run
            log.warning("MLflow: could not log %s: %s", what, exc)

    def on_log(self, metrics: dict[str, float], step: int) -> None:
        values = {f"{TRAIN_METRIC_PREFIX}{key}": value for key, value in metrics.items()}
        self._safely("metrics", log_metrics, self.client, self.run_id, values, step)

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        values = {f"{EPOCH_METRIC_PREFIX}{key}": value for key, value in metrics.items()}
        self._safely("epoch metrics", log_metrics, self.client, self.run_id, values, epoch)

    def on_checkpoint(self, path: Path, epoch: int, step: int) -> None:
        self._safely("checkpoint tag", self.client.set_tag, self.run_id, LAST_CHECKPOINT_TAG, str(path))


class ThroughputCallback(TrainCallback):
    """Every rank: training samples per second of this rank over windows of `every` optimizer steps, logged
    as `throughput/samples_per_s_rank<r>` (all ranks write into the same MLflow run)."""

    def __init__(
        self, rank: int, batch_size: int, every: int, client: MlflowClient | None, run_id: str | None
    ) -> None:
        self.rank = rank
        self.batch_size = batch_size
        self.every = max(1, every)
        self.client = client
        self.run_id = run_id
        self.samples = 0
        self.started = time.perf_counter()
        self.last_rate: float | None = None

    def on_iteration(self, record: IterationRecord) -> None:
        self.samples += self.batch_size
        if not record.optimizer_stepped or record.global_step % self.every:
            return
        now = time.perf_counter()
        self.last_rate = self.samples / max(now - self.started, 1e-9)
        self.samples, self.started = 0, now
        log.info("rank %d: %.2f samples/s", self.rank, self.last_rate)
        if self.client is not None and self.run_id is not None:
            key = throughput_metric(self.rank)
            try:
                log_metrics(self.client, self.run_id, {key: self.last_rate}, record.global_step)
            except Exception as exc:  # noqa: BLE001 - metrics must not stop a training run
                log.warning("MLflow: could not log throughput: %s", exc)
