"""`compare` on a real sqlite MLflow store holding a few logged evaluation runs."""

from __future__ import annotations

import pandas as pd
import pytest

mlflow = pytest.importorskip("mlflow")

from flows.compare import compare, latest_per_configuration  # noqa: E402
from flows.mlflow_names import SWEEP_CHILD, SWEEP_PARENT, SWEEP_ROLE_TAG  # noqa: E402
from flows.mlflow_tracking import ARTIFACTS_DIRNAME, default_tracking_uri, ensure_experiment  # noqa: E402

EXPERIMENT = "eval-test"
# (post-processing, keyframes, PQ, coco PQ, seconds per scene)
RUNS = [
    ("standard_v2", "4", 0.41, 0.35, 1.2),
    ("standard_v2", "all", 0.47, 0.38, 2.0),
    ("qubo", "4", 0.52, 0.44, 3.1),
    ("qubo", "all", 0.55, 0.46, 4.4),
]


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """runs dir with one sweep (parent + 4 children with per-class tables) and a failed child."""
    runs_dir = tmp_path_factory.mktemp("runs")
    client = mlflow.MlflowClient(tracking_uri=default_tracking_uri(runs_dir))
    experiment_id = ensure_experiment(client, EXPERIMENT, runs_dir / ARTIFACTS_DIRNAME)
    parent = client.create_run(
        experiment_id, tags={SWEEP_ROLE_TAG: SWEEP_PARENT}, run_name="sweep"
    ).info.run_id
    for method, keyframes, pq, coco, seconds in RUNS:
        run_id = client.create_run(
            experiment_id,
            tags={"mlflow.parentRunId": parent, SWEEP_ROLE_TAG: SWEEP_CHILD},
            run_name=f"model | {method} | kf={keyframes}",
        ).info.run_id
        for key, value in {
            "checkpoint_label": "run-a/model-final",
            "variant": "tiny_v1",
            "postprocess": method,
            "keyframes": keyframes,
            "split": "val",
        }.items():
            client.log_param(run_id, key, value)
        metrics = {"PQ": pq, "PQ_th": pq - 0.1, "PQ_st": pq + 0.1, "SQ": 0.8, "RQ": pq / 0.8}
        metrics.update({"coco_PQ": coco, "seconds_per_scene": seconds, "peak_memory_mb": 900.0})
        for key, value in metrics.items():
            client.log_metric(run_id, key, value)
        folder = runs_dir / f"tables-{method}-{keyframes}"
        folder.mkdir()
        pd.DataFrame(
            {
                "class_id": [0, 9, 23],
                "class_name": ["wall", "chair", "sofa"],
                "isthing": [False, True, True],
                "PQ": [0.9, pq, 0.1],
                "coco_PQ": [0.85, coco, None],
            }
        ).to_parquet(folder / "per_class.parquet")
        client.log_artifact(run_id, str(folder / "per_class.parquet"), artifact_path="tables")
        client.set_terminated(run_id)
    failed = client.create_run(
        experiment_id, tags={"mlflow.parentRunId": parent, SWEEP_ROLE_TAG: SWEEP_CHILD}, run_name="failed"
    ).info.run_id
    client.log_metric(failed, "PQ", 0.99)
    client.set_terminated(failed, status="FAILED")
    client.set_terminated(parent)
    return runs_dir


def test_compare_writes_sorted_table_plots_and_a_self_contained_report(logged, tmp_path):
    report = compare(EXPERIMENT, out=tmp_path / "out", runs_dir=logged)
    # finished child runs only (not the parent, not the failed run), best PQ first
    assert report.table["PQ"].tolist() == pytest.approx([0.55, 0.52, 0.47, 0.41])
    assert report.table.loc[0, "postprocess"] == "qubo" and report.table.loc[0, "keyframes"] == "all"
    assert set(report.plots) == {"pq_by_configuration", "pq_vs_speed", "per_class"}
    for path in report.plots.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    assert report.per_class["class_name"].tolist() == ["wall", "chair", "sofa"]
    html = report.html.read_text()
    assert html.count("data:image/png;base64,") == 3  # every plot embedded
    assert "qubo" in html and "0.550" in html and "chair" in html
    csv = pd.read_csv(report.out_dir / "runs.csv")
    assert len(csv) == 4


def test_filter_selects_runs(logged, tmp_path):
    report = compare(EXPERIMENT, "params.postprocess = 'standard_v2'", tmp_path / "f", runs_dir=logged)
    assert report.table["postprocess"].unique().tolist() == ["standard_v2"]
    assert report.table["PQ"].tolist() == pytest.approx([0.47, 0.41])


def test_a_filter_matching_nothing_still_writes_a_report(logged, tmp_path):
    report = compare(EXPERIMENT, "metrics.PQ > 0.9", tmp_path / "none", runs_dir=logged)
    assert report.table.empty and report.plots == {} and report.html.is_file()


def test_unknown_experiment_and_bad_filter_are_clear_errors(logged, tmp_path):
    with pytest.raises(ValueError, match="does not exist.*eval-test"):
        compare("nope", out=tmp_path / "x", runs_dir=logged)
    with pytest.raises(ValueError, match="not a valid MLflow search filter"):
        compare(EXPERIMENT, "params.postprocess ==== 1", tmp_path / "y", runs_dir=logged)


def test_latest_run_of_each_configuration_wins():
    table = pd.DataFrame(
        {
            "checkpoint": ["a", "a", "a"],
            "postprocess": ["qubo", "qubo", "standard_v2"],
            "keyframes": ["4", "4", "4"],
            "PQ": [0.9, 0.5, 0.7],
            "started": pd.to_datetime(["2026-01-01", "2026-02-01", "2026-01-15"]),
        }
    )
    latest = latest_per_configuration(table)
    assert latest["PQ"].tolist() == [0.7, 0.5]


PAIRED_EXPERIMENT = "eval-paired"
# (checkpoint, keyframes, per-scene PQ of scenes s0..s3): the better checkpoint has no 4-keyframe run, so
# the first panel of the PQ plot draws no bar at the first keyframe setting
PAIRED_RUNS = [
    ("base", "all", [0.70, 0.60, 0.50, 0.40]),
    ("new", "all", [0.60, 0.55, 0.45, 0.30]),
    ("new", "4", [0.50, 0.50, 0.40, 0.30]),
]


@pytest.fixture(scope="module")
def logged_pairs(tmp_path_factory):
    """runs dir with one sweep over two checkpoints, each child with its per-scene table."""
    runs_dir = tmp_path_factory.mktemp("paired_runs")
    client = mlflow.MlflowClient(tracking_uri=default_tracking_uri(runs_dir))
    experiment_id = ensure_experiment(client, PAIRED_EXPERIMENT, runs_dir / ARTIFACTS_DIRNAME)
    parent = client.create_run(experiment_id, tags={SWEEP_ROLE_TAG: SWEEP_PARENT}).info.run_id
    for checkpoint, keyframes, scene_pq in PAIRED_RUNS:
        run_id = client.create_run(
            experiment_id, tags={"mlflow.parentRunId": parent, SWEEP_ROLE_TAG: SWEEP_CHILD}
        ).info.run_id
        params = {"checkpoint_label": checkpoint, "postprocess": "standard_v2", "keyframes": keyframes}
        for key, value in params.items():
            client.log_param(run_id, key, value)
        client.log_metric(run_id, "PQ", sum(scene_pq) / len(scene_pq))
        folder = runs_dir / f"tables-{checkpoint}-{keyframes}"
        folder.mkdir()
        scenes = pd.DataFrame({"scene_id": [f"s{i}" for i in range(4)], "views": 8, "PQ": scene_pq})
        scenes.to_parquet(folder / "per_scene.parquet")
        client.log_artifact(run_id, str(folder / "per_scene.parquet"), artifact_path="tables")
        client.set_terminated(run_id)
    client.set_terminated(parent)
    return runs_dir


def test_paired_comparison_pairs_each_scene_and_reports_it(logged_pairs, tmp_path):
    report = compare(PAIRED_EXPERIMENT, out=tmp_path / "p", runs_dir=logged_pairs, paired_baseline="base")
    assert len(report.paired) == 1  # the 4-keyframe run has no baseline to pair with
    row = report.paired.iloc[0]
    assert (row["checkpoint"], row["keyframes"], row["scenes"]) == ("new", "all", 4)
    assert row["gain"] == pytest.approx(-0.075) and (row["up"], row["down"]) == (0, 4)
    assert row["significant"] and row["high"] < 0
    assert (tmp_path / "p" / "paired.csv").is_file()
    assert "Paired with the baseline" in report.html.read_text(encoding="utf-8")
    assert "pq_by_configuration" in report.plots  # drawn although its first panel lacks a 4-keyframe bar


def test_a_paired_baseline_that_is_not_a_checkpoint_is_a_clear_error(logged_pairs, tmp_path):
    with pytest.raises(ValueError, match="names no checkpoint of these runs; they have: base, new"):
        compare(PAIRED_EXPERIMENT, out=tmp_path / "q", runs_dir=logged_pairs, paired_baseline="old")
