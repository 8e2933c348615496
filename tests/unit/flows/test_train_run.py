"""The train flow's MLflow record, on a real sqlite MLflow store."""

import json

import pytest
from mlflow.tracking import MlflowClient
from toy_store import write_toy_store

from flows import train_run
from flows.mlflow_tracking import default_tracking_uri, flatten
from flows.run_config import prepare_run


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_toy_store(tmp_path_factory.mktemp("store") / "s", scenes=1, frames=3, image_size=(64, 48))


def test_mlflow_run_has_params_tags_artifacts_and_status(store, tmp_path):
    runs = tmp_path / "runs"
    plan = prepare_run([store], "synthetic_cpu", [], "r2", runs)
    tracking = train_run.start_mlflow_run(plan, "exp", None, runs, nproc_per_node=2)
    assert tracking.tracking_uri == default_tracking_uri(runs)
    assert tracking.worker_env() == {
        "MLFLOW_RUN_ID": tracking.run_id,
        "MLFLOW_TRACKING_URI": tracking.tracking_uri,
    }
    result = {"final_checkpoint": "/x/checkpoint-final", "exported_model": "/x/model-final", "global_step": 3}
    train_run.finish_mlflow_run(tracking, plan, result)
    client = MlflowClient(tracking_uri=tracking.tracking_uri)
    run = client.get_run(tracking.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "r2"
    assert run.data.params["training.epochs"] == "4" and run.data.params["launch.nproc_per_node"] == "2"
    assert run.data.params["launch.nnodes"] == "1"
    assert set(run.data.params) >= set(flatten(json.loads((plan.run_dir / "config.json").read_text())))
    assert run.data.tags["store.schema_version"] == "1" and len(run.data.tags["store.content_hash"]) == 64
    assert run.data.tags["final_checkpoint"] == "/x/checkpoint-final"
    artifacts = {a.path for a in client.list_artifacts(tracking.run_id, "config")}
    assert artifacts == {"config/config.json", "config/config.yaml"}
    experiment = client.get_experiment(tracking.experiment_id)
    assert experiment.artifact_location == (runs / "mlartifacts" / "exp").resolve().as_uri()


def test_an_interrupted_run_is_killed_and_a_run_left_running_is_closed_by_the_next_launch(store, tmp_path):
    runs = tmp_path / "runs"
    plan = prepare_run([store], "synthetic_cpu", [], "r3", runs)
    interrupted = train_run.start_mlflow_run(plan, "exp", None, runs, nproc_per_node=1)
    train_run.finish_mlflow_run(interrupted, plan, None, status="KILLED")
    orphan = train_run.start_mlflow_run(plan, "exp", None, runs, nproc_per_node=1)  # its launcher died
    other = prepare_run([store], "synthetic_cpu", [], "elsewhere", runs)
    running_elsewhere = train_run.start_mlflow_run(other, "exp", None, runs, nproc_per_node=1)
    current = train_run.start_mlflow_run(plan, "exp", None, runs, nproc_per_node=1)
    client = MlflowClient(tracking_uri=current.tracking_uri)
    status = {name: client.get_run(run.run_id).info.status for name, run in [
        ("interrupted", interrupted), ("orphan", orphan), ("elsewhere", running_elsewhere), ("current", current)
    ]}  # fmt: skip
    assert status == {
        "interrupted": "KILLED",
        "orphan": "KILLED",
        "elsewhere": "RUNNING",
        "current": "RUNNING",
    }
