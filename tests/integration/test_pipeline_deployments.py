"""`panst3r serve --train-on-preprocess PRESET` with a real Prefect server: `prefect deployment run
'preprocess/local'` alone leads to a completed train/local run on the same store; then `pipeline/local`
on that store skips what is up to date (no scene redone, the triggered model reused) and evaluates, and
its own preprocess subflow triggers no second training."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from _preprocess_support import REPO, TARGET_RESOLUTION, make_root
from _serve_support import Serve, rest_call

from flows import mlflow_names as names
from flows.prefect_env import free_port
from flows.run_config import TRAIN_DIRNAME
from flows.run_folder import EXPORT_DIRNAME, LOG_FILE

pytestmark = pytest.mark.slow

# One epoch of 4 optimizer steps at 64x48: the chain is what this test checks, not the model.
TINY_PRESET = """inherits: {parent}
data:
  samples_per_epoch: 8
  resolutions: [[64, 48]]
  split: null
criterion:
  num_points: 256
training:
  epochs: 1
  num_workers: 0
  print_freq: 1
"""


_api = rest_call


def _train_runs(api_url: str) -> list[dict]:
    """Flow runs of the flow `train` started by a deployment (the trigger's), oldest first."""
    runs = _api(
        api_url, "flow_runs/filter", {"flows": {"name": {"any_": ["train"]}}, "sort": "START_TIME_ASC"}
    )
    return [run for run in runs if run["deployment_id"]]


def _wait_for_train_run(api_url: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    runs: list[dict] = []
    while time.monotonic() < deadline:
        runs = _train_runs(api_url)
        if runs and runs[0]["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return runs[0]
        time.sleep(2)
    pytest.fail(f"no triggered train run finished within {timeout} s: {[r['state_type'] for r in runs]}")


def test_preprocess_deployment_triggers_training_and_the_pipeline_reuses_it(tmp_path):
    root, pairs = make_root(tmp_path / "data", num_scenes=2, seed=23)
    store = tmp_path / "store"
    preset = tmp_path / "tiny.yaml"
    preset.write_text(TINY_PRESET.format(parent=REPO / "conf" / "train" / "synthetic_cpu.yaml"))
    # cwd tmp_path: the flow runs' default runs_dir ("runs") lands there
    serve = Serve(tmp_path, free_port(), "--workers", "1", "--train-on-preprocess", str(preset), cwd=tmp_path)
    try:
        serve.wait_for_line("serving: ")
        assert "pipeline/local" in serve.log() and "trigger: each completed preprocess/local" in serve.log()
        inputs = [
            f"root={root}",
            f"pairs={pairs}",
            f"store={store}",
            f"target_resolution={TARGET_RESOLUTION}",
        ]
        serve.run_deployment("preprocess/local", *inputs, cwd=tmp_path)

        triggered = _wait_for_train_run(serve.api_url)
        assert triggered["state_type"] == "COMPLETED", serve.log()[-4000:]
        assert triggered["parameters"]["store"] == str(store)
        assert triggered["parameters"]["config"] == str(preset) and triggered["parameters"]["reuse"] is True
        run_dirs = sorted((tmp_path / "runs" / TRAIN_DIRNAME).iterdir())
        assert len(run_dirs) == 1 and (run_dirs[0] / EXPORT_DIRNAME).is_dir()
        trained_at = (run_dirs[0] / LOG_FILE).stat().st_mtime

        choices = [f"config={preset}", "split=all", "keyframes=[2]", 'postprocess=["standard_v2"]']
        serve.run_deployment("pipeline/local", *inputs, *choices, cwd=tmp_path)
        time.sleep(10)  # time for a (wrong) trigger on the pipeline's preprocess subflow to fire
        assert len(_train_runs(serve.api_url)) == 1, (
            "the pipeline's own preprocess must not trigger train/local"
        )
    finally:
        serve.stop()
    serve.assert_stopped_cleanly()
    # the pipeline reused the triggered run (no new run folder, no new launch) and evaluated its model
    assert sorted((tmp_path / "runs" / TRAIN_DIRNAME).iterdir()) == run_dirs
    assert (run_dirs[0] / LOG_FILE).stat().st_mtime == trained_at
    log = serve.log()
    assert "0 to process, 2 up to date" in log, log[-4000:]
    assert f"reusing run {run_dirs[0].name}" in log
    _assert_sweep_logged(tmp_path / "runs", run_dirs[0] / EXPORT_DIRNAME)


def _assert_sweep_logged(runs: Path, model: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{runs / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("panst3r-pipeline")
    assert experiment is not None, "the pipeline's evaluate logged no sweep"
    runs = client.search_runs([experiment.experiment_id])
    children = [run for run in runs if names.PARENT_RUN_TAG in run.data.tags]  # one per configuration
    assert children and {run.data.params[names.CHECKPOINT] for run in children} == {str(model)}
    assert all("PQ" in run.data.metrics for run in children)
