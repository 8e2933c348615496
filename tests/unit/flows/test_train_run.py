"""The train flow's steps without Prefect: config resolution into the run folder, MLflow run records,
the torchrun command and its streamed output."""

import json
import sys

import pytest
from mlflow.tracking import MlflowClient

from datasets.training.toy_store import write_toy_store
from flows import train_run
from flows.mlflow_tracking import default_tracking_uri, flatten


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_toy_store(tmp_path_factory.mktemp("store") / "s", scenes=1, frames=3, image_size=(64, 48))


def test_prepare_run_writes_the_resolved_config(store, tmp_path):
    plan = train_run.prepare_run([store], "synthetic_cpu", ["training.epochs=7"], "r1", tmp_path / "runs")
    assert plan.run_dir == (tmp_path / "runs" / "train" / "r1").resolve()
    written = json.loads((plan.run_dir / "config.json").read_text())
    assert written["training"]["epochs"] == 7
    assert written["training"]["output_dir"] == str(plan.run_dir)
    assert written["data"]["stores"] == [str(store.resolve())]
    assert written["model"]["text_embeddings"] == "hashed"
    assert plan.resume_from is None and (plan.run_dir / "config.yaml").is_file()


def test_prepare_run_refuses_bad_input(store, tmp_path):
    with pytest.raises(ValueError, match="unknown key"):
        train_run.prepare_run([store], "synthetic_cpu", ["training.epoch=7"], "r", tmp_path)
    with pytest.raises(ValueError, match="set by the train flow"):
        train_run.prepare_run([store], "synthetic_cpu", ["training.output_dir=/elsewhere"], "r", tmp_path)
    with pytest.raises(ValueError, match="unknown training config"):
        train_run.prepare_run([store], "no_such_config", [], "r", tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train_run.prepare_run([tmp_path / "missing"], "synthetic_cpu", [], "r", tmp_path)
    with pytest.raises(ValueError, match="run-name"):
        train_run.prepare_run([store], "synthetic_cpu", [], "a/b", tmp_path)


def test_mlflow_run_has_params_tags_artifacts_and_status(store, tmp_path):
    runs = tmp_path / "runs"
    plan = train_run.prepare_run([store], "synthetic_cpu", [], "r2", runs)
    tracking = train_run.start_mlflow_run(plan, "exp", None, runs, nproc_per_node=2)
    assert tracking.tracking_uri == default_tracking_uri(runs)
    result = {"final_checkpoint": "/x/checkpoint-final", "exported_model": "/x/model-final", "global_step": 3}
    train_run.finish_mlflow_run(tracking, plan, result, failed=False)
    client = MlflowClient(tracking_uri=tracking.tracking_uri)
    run = client.get_run(tracking.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "r2"
    assert run.data.params["training.epochs"] == "4" and run.data.params["launch.nproc_per_node"] == "2"
    assert set(run.data.params) >= set(flatten(json.loads((plan.run_dir / "config.json").read_text())))
    assert run.data.tags["store.schema_version"] == "1" and len(run.data.tags["store.content_hash"]) == 64
    assert run.data.tags["final_checkpoint"] == "/x/checkpoint-final"
    artifacts = {a.path for a in client.list_artifacts(tracking.run_id, "config")}
    assert artifacts == {"config/config.json", "config/config.yaml"}
    experiment = client.get_experiment(tracking.experiment_id)
    assert experiment.artifact_location == (runs / "mlartifacts" / "exp").resolve().as_uri()


def test_torchrun_command_and_streaming(tmp_path, monkeypatch):
    command = train_run.torchrun_command(tmp_path, 2)
    assert command[-7:] == [
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "flows.torchrun_worker",
        "--run-dir",
        str(tmp_path),
    ]
    with pytest.raises(ValueError, match="nproc-per-node"):
        train_run.torchrun_command(tmp_path, 0)
    env = train_run.worker_environment(None)
    assert env["NCCL_NVLS_ENABLE"] == "0" and env["TORCH_SYMM_MEM_DISABLE_MULTICAST"] == "1"
    assert env["NVSHMEM_DISABLE_NVLS"] == "1"
    # A stand-in launcher: prints two lines, writes result.json, or fails.
    script = "import json,sys,pathlib; print('line one'); print('line two'); d=pathlib.Path(sys.argv[-1]); "
    ok = [
        sys.executable,
        "-c",
        script + "d.joinpath('result.json').write_text(json.dumps({'global_step': 5}))",
    ]
    monkeypatch.setattr(train_run, "torchrun_command", lambda run_dir, n: [*ok, str(run_dir)])
    lines = []
    assert train_run.launch_torchrun(tmp_path, 1, env, lines.append) == {"global_step": 5}
    assert lines == ["line one", "line two"] and "line two" in (tmp_path / "torchrun.log").read_text()
    bad = [sys.executable, "-c", "print('boom'); raise SystemExit(3)"]
    monkeypatch.setattr(train_run, "torchrun_command", lambda run_dir, n: [*bad, str(run_dir)])
    with pytest.raises(RuntimeError, match="code 3"):
        train_run.launch_torchrun(tmp_path, 1, env, lines.append)


def test_loss_summary_reads_first_and_last_logged_loss(tmp_path):
    records = [
        {"kind": "log", "panoptic_loss": 5.0},
        {"kind": "epoch", "panoptic_loss": 9.0},
        {"kind": "log", "panoptic_loss": 2.5},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert train_run.loss_summary(tmp_path) == {"first_loss": 5.0, "last_loss": 2.5}
    assert train_run.loss_summary(tmp_path / "none") == {}
