"""The `train` flow end to end: 2-process torchrun (gloo) on the CPU from the Prefect flow, on a store
preprocessed from the synthetic generator's scenes; then a second flow run that resumes; MLflow checked."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from _preprocess_support import REPO, cli_command, cli_env
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

# Small enough for 2 cores: 64x48 views, 2 optimizer steps per epoch and rank, no loader workers.
OVERRIDES = [
    "data.samples_per_epoch=8",
    "data.resolutions=[[64,48]]",
    "data.split=null",
    "criterion.num_points=256",
    "training.num_workers=0",
    "training.print_freq=1",
]


@pytest.fixture(scope="module")
def store(synthetic_root, tmp_path_factory):
    """The synthetic scenes preprocessed with the library functions the preprocess flow runs."""
    from _preprocess_support import preprocess_in_process

    return preprocess_in_process(synthetic_root, tmp_path_factory.mktemp("train_store") / "store", 160)


def run_train(env, store: Path, runs: Path, *overrides: str) -> subprocess.CompletedProcess:
    command = cli_command(
        "train",
        "--store",
        str(store),
        "--config",
        "synthetic_cpu",
        "--nproc-per-node",
        "2",
        "--runs-dir",
        str(runs),
        "--run-name",
        "cpu2",
        "--experiment",
        "train-test",
        *OVERRIDES,
        *overrides,
    )
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def log_steps(run_dir: Path) -> list[int]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [record["step"] for record in map(json.loads, lines) if record["kind"] == "log"]


def test_two_rank_cpu_training_checkpoints_resumes_and_is_in_mlflow(store, prefect_server, tmp_path):
    env = cli_env(*prefect_server)
    runs = tmp_path / "runs"
    run_dir = runs / "train" / "cpu2"

    first = run_train(env, store, runs, "training.epochs=1")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "MLflow UI" in first.stdout and str(run_dir) in first.stdout
    # Both ranks' output was streamed line by line into the flow's log.
    assert "rank0 INFO" in first.stderr and "rank1 INFO" in first.stderr
    result = json.loads((run_dir / "result.json").read_text())
    assert result["world_size"] == 2 and result["global_step"] == 2 and result["resumed_from"] is None
    assert (run_dir / "checkpoint-last" / "meta.json").is_file()
    assert log_steps(run_dir) == [1, 2]

    second = run_train(env, store, runs, "training.epochs=2")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    result = json.loads((run_dir / "result.json").read_text())
    # Continued from checkpoint-last: steps 3 and 4 only, not a fresh start at step 1.
    assert result["resumed_from"].endswith("checkpoint-last") and result["global_step"] == 4
    assert log_steps(run_dir) == [1, 2, 3, 4]

    from panst3r_core.checkpoint.ours import load_checkpoint

    exported = load_checkpoint(result["exported_model"])
    assert exported.metadata["text_embeddings"] == "hashed" and len(exported.metadata["class_names"]) > 10

    client = MlflowClient(tracking_uri=f"sqlite:///{(runs / 'mlflow.db').resolve()}")
    experiment = client.get_experiment_by_name("train-test")
    found = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    assert [run.info.status for run in found] == ["FINISHED", "FINISHED"]
    fresh, resumed = found
    for run in found:
        assert (
            run.data.params["model.variant"] == "tiny_v2" and run.data.params["launch.nproc_per_node"] == "2"
        )
        assert run.data.tags["store.schema_version"] == "1" and len(run.data.tags["store.content_hash"]) == 64
        assert run.data.tags["mlflow.runName"] == "cpu2"
        assert {
            "train/panoptic_loss",
            "train/loss_ce",
            "train/loss_mask",
            "train/loss_dice",
            "train/lr",
        } <= set(run.data.metrics)
        # Both ranks logged their throughput into the same run.
        assert {"throughput/samples_per_s_rank0", "throughput/samples_per_s_rank1"} <= set(run.data.metrics)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "config")}
        assert "config/config.json" in artifacts
        pointer = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoint")}
        assert pointer == {"checkpoint/final_checkpoint.json"}
    assert fresh.data.params["training.epochs"] == "1" and resumed.data.params["training.epochs"] == "2"
    assert fresh.data.tags["resumed_from"] == "" and resumed.data.tags["resumed_from"].endswith(
        "checkpoint-last"
    )
    history = client.get_metric_history(resumed.info.run_id, "train/panoptic_loss")
    assert sorted(m.step for m in history) == [3, 4]
