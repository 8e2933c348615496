"""MLflow helpers: flattening, absolute artifact locations, callbacks writing into an existing run."""

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from flows.mlflow_tracking import (
    MlflowMetricsCallback,
    ThroughputCallback,
    default_tracking_uri,
    ensure_experiment,
    flatten,
    run_status_on_exit,
)
from panst3r_core.engine.callbacks import IterationRecord


def test_flatten_nested_config():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {"a.b": "1", "a.c": "[1, 2]", "d": "None"}


def test_experiment_artifacts_are_absolute_and_callbacks_log(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = default_tracking_uri("runs")
    assert uri == f"sqlite:///{(tmp_path / 'runs' / 'mlflow.db').resolve()}"
    client = MlflowClient(tracking_uri=uri)
    experiment_id = ensure_experiment(client, "e", Path("runs") / "mlartifacts")
    assert ensure_experiment(client, "e", None) == experiment_id
    location = client.get_experiment(experiment_id).artifact_location
    assert location.startswith("file:///") and location.endswith("runs/mlartifacts/e")
    run_id = client.create_run(experiment_id).info.run_id

    metrics = MlflowMetricsCallback(client, run_id)
    metrics.on_log({"panoptic_loss": 3.0, "lr": 1e-3}, step=4)
    metrics.on_epoch_end(0, {"panoptic_loss": 2.0})
    throughput = ThroughputCallback(rank=1, batch_size=2, every=2, client=client, run_id=run_id)
    for step in (1, 2):
        throughput.on_iteration(IterationRecord(0, step - 1, step, True, 1e-3, {}))
    data = client.get_run(run_id).data.metrics
    assert data["train/panoptic_loss"] == 3.0 and data["train/lr"] == 1e-3
    assert data["epoch/panoptic_loss"] == 2.0
    assert data["throughput/samples_per_s_rank1"] > 0 and throughput.last_rate > 0
    history = client.get_metric_history(run_id, "train/panoptic_loss")
    assert [m.step for m in history] == [4]


def test_run_status_on_exit_finishes_or_fails_the_run(tmp_path):
    client = MlflowClient(tracking_uri=default_tracking_uri(tmp_path))
    experiment_id = ensure_experiment(client, "status", tmp_path / "mlartifacts")
    finished, failed, interrupted = (client.create_run(experiment_id).info.run_id for _ in range(3))
    with run_status_on_exit(client, finished):
        assert client.get_run(finished).info.status == "RUNNING"
    with pytest.raises(RuntimeError), run_status_on_exit(client, failed):
        raise RuntimeError("boom")
    with pytest.raises(KeyboardInterrupt), run_status_on_exit(client, interrupted):
        raise KeyboardInterrupt
    statuses = [client.get_run(r).info.status for r in (finished, failed, interrupted)]
    assert statuses == ["FINISHED", "FAILED", "FAILED"]
