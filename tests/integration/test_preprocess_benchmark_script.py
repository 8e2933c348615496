"""The preprocess benchmark script at toy size: generated scenes with the realistic options (kept), a worker
list with weak scaling, frames/s, scaling efficiency, stages and per-worker busy time in the JSON it writes
(no local paths)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "preprocess.py"

pytestmark = pytest.mark.slow


def test_worker_list_reports_efficiency_stages_and_busy_time(tmp_path):
    result_file = tmp_path / "docs" / "result.json"
    argv = ["--preset", "scannetpp", "--scenes", "2", "--frames", "2", "--image-size", "128", "86"]
    argv += ["--mesh-faces", "0", "--objects", "60", "--gen-workers", "2", "--workers", "1", "2"]
    argv += ["--scenes-per-worker", "1", "--keep-root", str(tmp_path / "kept")]
    argv += ["--target-resolution", "128", "--out", str(tmp_path / "out"), "--json", str(result_file)]
    # As a script, the way it is used: its generator processes re-import it as the main module.
    env = {
        **os.environ,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_HOME": str(tmp_path / "prefect"),
    }
    result = subprocess.run([sys.executable, str(SCRIPT), *argv], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "scaling_efficiency" in result.stdout
    # each row's numbers as it is measured, before the table (a call cut short keeps them)
    measured = [line for line in result.stdout.splitlines() if line.startswith("row measured: flow w")]
    assert [line.split()[3] for line in measured] == ["w1", "w2"], result.stdout[-2000:]

    text = result_file.read_text()
    assert str(tmp_path) not in text  # fit to commit
    result = json.loads(text)
    assert "physical cores" in result["machine"]  # hosts with equal CPU counts differ in their cores
    assert min(result["generation"]["objects_per_scene"]) >= 60
    assert result["generation"]["camera"] == "OPENCV_FISHEYE 128x86"
    one, two = result["rows"]
    # weak scaling: one scene per worker
    assert (one["workers"], two["workers"]) == (1, 2) and (one["scenes"], two["scenes"]) == (1, 2)
    assert (one["frames"], two["frames"]) == (2, 4)
    assert sorted(p.name for p in (tmp_path / "kept" / "pairs").iterdir()) == sorted(
        p.name for p in (tmp_path / "kept" / "root" / "data").iterdir()
    )  # the generated scenes are kept for --root
    assert one["scaling_efficiency"] == 1.0
    expected = two["frames_per_second"] / (2 * one["frames_per_second"])
    assert two["scaling_efficiency"] == pytest.approx(expected, abs=0.002)
    for row in (one, two):
        # No NVIDIA driver here: "auto" keeps the frames on the CPU, and the row says so.
        assert row["frame_device"] == "auto" and row["frame_devices_used"] == ["cpu"]
        assert len(row["worker_busy_seconds"]) == row["workers"] and max(row["worker_busy_seconds"]) > 0
        assert {"render", "write", "build_mesh"} <= set(row["task_seconds_per_frame_by_stage"])
        assert 0 < row["busy_fraction"] <= 1.0
        idle = row["idle_seconds_per_worker"]
        assert set(idle) == {"before_first_task", "between_tasks", "after_last_task"}
        # A worker's idle and busy seconds add up to the flow's duration, which lies inside the row's wall time.
        assert all(seconds >= 0 for seconds in idle.values())
        busy = [seconds for seconds in row["worker_busy_seconds"] if seconds > 0]
        assert sum(idle.values()) + sum(busy) / len(busy) <= row["wall_seconds"] + 0.1
        # The flow places every task on its worker, on a scheduler without work stealing (as the flow's own).
        assert row["tasks_moved_by_stealing"] == 0
        # Where the flow's loop spent its time: activities that fit inside the flow's run.
        loop = row["flow_loop_seconds"]
        assert set(loop) == {"waiting_for_planning", "waiting_for_tasks", "handling", "placing", "tables"}
        assert all(0 <= v["longest"] <= v["seconds"] for v in loop.values())
        assert 0 < sum(v["seconds"] for v in loop.values()) <= row["flow_seconds"]
        assert loop["placing"]["seconds"] > 0
    assert all("; flow loop s: waiting_for_planning " in line for line in measured)
