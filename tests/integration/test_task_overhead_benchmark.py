"""The task-overhead benchmark, for real: a Prefect server, a one-worker Dask cluster, both kinds of task
inside one flow run; each kind reports its submission, end-to-end and flow-process CPU per task."""

from __future__ import annotations

import json
import subprocess
import sys

from _preprocess_support import REPO


def test_both_kinds_of_task_are_measured(tmp_path):
    out = tmp_path / "overhead.json"
    command = [sys.executable, str(REPO / "tests" / "benchmarks" / "task_overhead.py"), "--tasks", "3",
               "--json", str(out)]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["tasks_of_each_kind"] == 3
    assert set(report["per_task"]) == {"prefect_task", "plain_dask_task"}
    for kind in report["per_task"].values():
        assert set(kind) == {"submit_ms", "end_to_end_ms", "flow_process_cpu_ms"}
        assert 0 < kind["submit_ms"] <= kind["end_to_end_ms"]
