"""The preprocess benchmark's settings and its scaling efficiency, on hand-made rows; its processes runner
once for real on two tiny synthetic scenes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from benchmark_scripts import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("preprocess")


def test_efficiency_is_throughput_over_workers_times_the_single_worker_throughput(bench):
    rows = [
        {"store": "local", "workers": w, "frames_per_second": fps}
        for w, fps in ((1, 2.0), (2, 3.0), (8, 8.0))
    ] + [
        {"store": "s3", "workers": 2, "frames_per_second": 2.0},
        {"store": "s3", "workers": 4, "frames_per_second": 3.0},
    ]
    bench.add_efficiency(rows)
    assert [r["scaling_efficiency"] for r in rows] == [1.0, 0.75, 0.5, 1.0, 0.75]
    # worker counts measured in a later run: the base comes from the earlier result's rows
    later = [{"store": "local", "workers": 16, "frames_per_second": 24.0}]
    bench.add_efficiency(later, earlier=rows)
    assert later[0]["scaling_efficiency"] == 0.75


def test_each_frame_device_is_its_own_efficiency_base(bench):
    rows = [
        {"store": "local", "frame_device": device, "workers": w, "frames_per_second": fps}
        for device, w, fps in (("cpu", 1, 2.0), ("cpu", 4, 6.0), ("cuda", 1, 4.0), ("cuda", 4, 8.0))
    ]
    bench.add_efficiency(rows)
    assert [r["scaling_efficiency"] for r in rows] == [1.0, 0.75, 1.0, 0.5]
    # Rows written before frame devices existed ran on the CPU's setting "auto".
    old = [{"store": "local", "workers": 1, "frames_per_second": 1.0}]
    later = [{"store": "local", "frame_device": "auto", "workers": 2, "frames_per_second": 1.5}]
    bench.add_efficiency(later, earlier=old)
    assert later[0]["scaling_efficiency"] == 0.75


def test_each_runner_is_its_own_efficiency_base(bench):
    rows = [
        {"runner": runner, "store": "local", "workers": w, "frames_per_second": fps}
        for runner, w, fps in (
            ("flow", 1, 2.0),
            ("flow", 2, 3.0),
            ("processes", 2, 5.0),
            ("processes", 4, 8.0),
        )
    ]
    bench.add_efficiency(rows)
    # the processes rows' base is their own fewest workers (2), not the flow's single worker
    assert [r["scaling_efficiency"] for r in rows] == [1.0, 0.75, 1.0, 0.8]
    # Rows written before runners existed are the flow's.
    old = [{"store": "local", "workers": 1, "frames_per_second": 1.0}]
    later = [
        {"runner": "flow", "store": "local", "workers": 2, "frames_per_second": 1.5},
        {"runner": "processes", "store": "local", "workers": 2, "frames_per_second": 1.5},
    ]
    bench.add_efficiency(later, earlier=old)
    assert [r["scaling_efficiency"] for r in later] == [0.75, 1.0]


def test_repeats_merge_within_a_runner_only(bench):
    rows = [
        {"runner": runner, "store": "local", "workers": 2, "frames_per_second": fps}
        for runner, fps in (("flow", 2.0), ("processes", 5.0), ("flow", 4.0), ("processes", 7.0))
    ]
    merged = {r["runner"]: r for r in bench.median_rows(rows)}
    assert merged["flow"]["frames_per_second"] == 3.0 and merged["flow"]["runs"] == 2
    assert merged["processes"]["frames_per_second"] == 6.0 and merged["processes"]["runs"] == 2


def test_stage_seconds_and_idle_seconds_of_the_processes_rows(bench):
    timings = [{"render": 2.0, "write": 1.0, "total": 3.5}, {"render": 4.0, "pairs": 0.5, "total": 5.0}]
    assert bench.stage_seconds_per_frame(timings, 10) == {"pairs": 0.05, "render": 0.6, "write": 0.1}
    # two processes released at 100: one ran tasks 100-103 and 104-106, the other 101-110; the run ended at 110
    idle = bench.idle_seconds([[(104.0, 106.0), (100.0, 103.0)], [(101.0, 110.0)]], 100.0, 110.0)
    assert idle == {"before_first_task": 0.5, "between_tasks": 0.5, "after_last_task": 2.0}


def test_frame_devices_and_runner_flags(bench):
    assert bench.parse_args([]).frame_devices == ["auto"]
    assert bench.parse_args(["--frame-devices", "cpu", "cuda"]).frame_devices == ["cpu", "cuda"]
    assert bench.parse_args([]).runner == ["flow"]
    assert bench.parse_args(["--runner", "flow", "processes"]).runner == ["flow", "processes"]
    for bad in (["--frame-devices", "gpu"], ["--runner", "dask"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)


def test_preset_settings_and_overrides(bench):
    args = bench.parse_args(
        ["--preset", "scannetpp", "--frames", "10", "--workers", "1", "2", "4", "8", "16"]
    )
    settings = bench.generator_settings(args)
    assert settings["frames"] == 10 and settings["image_size"] == (1752, 1168)
    assert settings["mesh_faces"] >= 200_000 and settings["camera_model"] == "OPENCV_FISHEYE"
    assert args.workers == [1, 2, 4, 8, 16]
    assert bench.generator_settings(bench.parse_args([])) == {"frames": 8, "camera_model": "OPENCV_FISHEYE"}
    with pytest.raises(SystemExit):
        bench.parse_args(["--workers", "0", "2"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scenes", "4", "--scenes-per-worker", "2", "--workers", "1", "4"], "needs --scenes >= 8"),
        (["--keep-root", "KEPT", "--root", "R"], "give one of them"),
        (["--keep-root", "FULL"], "is not empty"),
    ],
)
def test_bad_flag_combinations_are_one_clear_error(bench, tmp_path, capsys, argv, message):
    (tmp_path / "FULL").mkdir()
    (tmp_path / "FULL" / "root").mkdir()
    argv = [str(tmp_path / a) if a in ("KEPT", "FULL", "R") else a for a in argv]
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_each_row_runs_on_a_cluster_made_as_the_flow_makes_its_own(bench):
    from flows.dask_cluster import PREPROCESS_WORKER_OPTIONS, worker_preload

    kwargs = bench.cluster_kwargs(3)
    assert kwargs["n_workers"] == 3 and kwargs["threads_per_worker"] == 1
    assert kwargs["preload"] == worker_preload(PREPROCESS_WORKER_OPTIONS)
    extensions = kwargs["scheduler_kwargs"]["extensions"]
    assert "stealing" not in extensions and "amm" in extensions, "the flow's scheduler does no work stealing"


@pytest.mark.slow  # about 30 s on two cores: scene generation and two spawned, preloaded processes per row
def test_the_processes_runner_runs_each_process_its_share_of_the_scenes(tmp_path):
    out = tmp_path / "result.json"
    # 20 frames at 16 frames per task: two chunks per scene; 0: one whole-scene task each
    argv = ["--scenes", "2", "--frames", "20", "--image-size", "292", "195", "--workers", "2"]
    argv += [
        "--runner",
        "processes",
        "--frames-per-task",
        "0",
        "16",
        "--out",
        str(tmp_path),
        "--json",
        str(out),
    ]
    # As a script, the way it is used: its spawned processes run it as their main module.
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "preprocess.py"
    env = {
        **os.environ,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_HOME": str(tmp_path / "prefect"),
    }
    result = subprocess.run([sys.executable, str(script), *argv], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["runner"], r["frames_per_task"]) for r in rows] == [("processes", 0), ("processes", 16)]
    for row in rows:
        assert row["scenes"] == 2 and row["frames"] == 40 and row["frames_per_second"] > 0
        assert row["scaling_efficiency"] == 1.0  # each task size is its own base
        # scene i in process i % 2: both processes busy, each with its own peak memory
        assert len(row["worker_busy_seconds"]) == 2 and min(row["worker_busy_seconds"]) > 0
        assert len(row["peak_rss_mb_per_worker"]) == 2 and min(row["peak_rss_mb_per_worker"]) > 0
        assert row["task_seconds_per_frame_by_stage"]["render"] > 0
        assert row["task_seconds_per_frame"] >= sum(row["task_seconds_per_frame_by_stage"].values()) * 0.9
        assert row["frame_devices_used"] == ["cpu"]
    # chunks render against each process's cached mesh; whole-scene tasks build their own, uncounted
    assert [r["mesh_builds"] for r in rows] == [0, 2]
