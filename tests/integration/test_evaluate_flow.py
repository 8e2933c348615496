"""The `evaluate` flow end to end: a real sweep (tiny model, 2 post-processings x 1 keyframe setting) on a
small store, through the CLI, into a real sqlite MLflow store; then `--reuse` and `panst3r compare`."""

from __future__ import annotations

import subprocess

import pytest
import torch
from _preprocess_support import REPO, cli_command, cli_env

pytestmark = pytest.mark.slow

POSTPROCESS = ("standard_v2:mask_threshold=0.0", "qubo")  # canonical forms


@pytest.fixture(scope="module")
def store_and_model(tmp_path_factory):
    """A store of 3 toy scenes (2 in split val) and a tiny_v1 checkpoint with hashed text embeddings."""
    from toy_store import toy_categories, toy_scene, write_toy_store

    from datasets.store.tables import TableBuilder
    from datasets.store.writer import write_scene
    from panst3r_core.checkpoint.ours import save_checkpoint
    from panst3r_core.model.variants import build_model

    folder = tmp_path_factory.mktemp("evaluate_flow")
    store = write_toy_store(folder / "store", scenes=2, frames=4, split="val")
    train_scene = toy_scene("toytrain", 99, frames=4)
    train_scene.categories = toy_categories()
    write_scene(store, train_scene, source_hash="t", config_hash="toy", code_version="toy", split="train")
    TableBuilder(store).write()
    torch.manual_seed(0)
    model = save_checkpoint(
        build_model("tiny_v1"),
        folder / "model-final",
        metadata={"text_embeddings": "hashed", "variant": "tiny_v1"},
    )
    return store, model


def _run(env, *args, timeout=600):
    result = subprocess.run(
        cli_command(*args), cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_sweep_logs_parent_and_child_runs_with_params_metrics_and_artifacts(
    store_and_model, prefect_server, tmp_path
):
    from mlflow.tracking import MlflowClient

    store, model = store_and_model
    env = cli_env(*prefect_server)
    env["OMP_NUM_THREADS"] = "1"
    runs = tmp_path / "runs"
    args = [
        "evaluate",
        "--store", str(store),
        "--checkpoints", str(model),
        "--postprocess", *POSTPROCESS,
        "--keyframes", "2",
        "--image-size", "160",
        "--experiment", "eval-it",
        "--runs-dir", str(runs),
    ]  # fmt: skip
    first = _run(env, *args)
    assert "qubo" in first.stdout and "standard_v2" in first.stdout

    client = MlflowClient(tracking_uri=f"sqlite:///{runs / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("eval-it")
    assert (
        experiment.artifact_location.startswith("file://")
        and str(runs.resolve()) in experiment.artifact_location
    )
    all_runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in all_runs if r.data.tags.get("panst3r.sweep") == "parent"]
    children = [r for r in all_runs if r.data.tags.get("panst3r.sweep") == "child"]
    assert len(parents) == 1 and len(children) == len(POSTPROCESS)
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert (
        parent.data.params["postprocess"] == " ".join(POSTPROCESS) and parent.data.params["num_scenes"] == "2"
    )
    assert parent.data.tags["best_run_id"] in {c.info.run_id for c in children}
    parent_artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "tables")}
    assert parent_artifacts == {"tables/sweep.parquet", "tables/sweep.csv"}

    assert sorted(c.data.params["postprocess"] for c in children) == sorted(POSTPROCESS)
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        params = child.data.params
        assert params["checkpoint"] == str(model.resolve()) and params["variant"] == "tiny_v1"
        assert params["keyframes"] == "2" and params["split"] == "val" and params["image_size"] == "160"
        metrics = child.data.metrics
        for name in ("PQ", "SQ", "RQ", "PQ_th", "PQ_st", "coco_PQ", "seconds_per_scene", "peak_memory_mb"):
            assert name in metrics, name
        assert (
            0.0 <= metrics["PQ"] <= 1.0 and metrics["seconds_per_scene"] > 0 and metrics["peak_memory_mb"] > 0
        )
        assert metrics["num_scenes"] == 2  # the val scenes only, not the train scene
        tables = {a.path for a in client.list_artifacts(child.info.run_id, "tables")}
        assert tables == {f"tables/{n}.{e}" for n in ("per_scene", "per_class") for e in ("parquet", "csv")}
        pictures = [a.path for a in client.list_artifacts(child.info.run_id, "vis")]
        assert sorted(pictures) == ["vis/toy000_00.png", "vis/toy000_01.png"]
        import pandas as pd

        per_scene = pd.read_parquet(client.download_artifacts(child.info.run_id, "tables/per_scene.parquet"))
        assert sorted(per_scene["scene_id"]) == ["toy000_00", "toy000_01"]
        assert per_scene["PQ"].mean() == pytest.approx(metrics["PQ"])

    # the same sweep again with --reuse: no new runs
    again = _run(env, *args, "--reuse")
    assert "reused" in again.stdout
    assert len(client.search_runs([experiment.experiment_id])) == len(all_runs)

    report = _run(
        env, "compare", "--experiment", "eval-it", "--runs-dir", str(runs), "--out", str(tmp_path / "cmp")
    )
    assert (tmp_path / "cmp" / "report.html").is_file() and (
        tmp_path / "cmp" / "pq_by_configuration.png"
    ).is_file()
    assert "report:" in report.stdout
    # paired with its own checkpoint: the per-scene tables are read, and no other checkpoint pairs with it
    label = children[0].data.params["checkpoint_label"]
    paired = _run(env, "compare", "--experiment", "eval-it", "--runs-dir", str(runs), "--paired", label)
    assert "paired: no scene was scored by both" in paired.stdout


def test_bad_input_is_one_clear_error(store_and_model, prefect_server, tmp_path):
    store, model = store_and_model
    env = cli_env(*prefect_server)
    result = subprocess.run(
        cli_command("evaluate", "--store", str(store), "--checkpoints", str(tmp_path / "missing")),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "does not exist" in result.stderr
