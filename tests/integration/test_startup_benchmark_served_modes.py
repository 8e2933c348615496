"""The start-up benchmark's served modes, for real: a `panst3r serve` of this tree, one CLI run on its warm
workers and one run of the served deployment created through the REST API (tests/benchmarks)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from _preprocess_support import REPO

pytestmark = pytest.mark.slow


def test_served_and_deployment_rows(tmp_path):
    out = tmp_path / "startup.json"
    command = [sys.executable, str(REPO / "tests" / "benchmarks" / "preprocess_startup.py"), "--scenes", "1",
               "--frames", "3", "--runs", "1", "--workers", "1", "--modes", "served", "deployment",
               "--json", str(out)]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {row["mode"]: row for row in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"served", "deployment"}
    for row in rows.values():
        assert row["returncode"] == 0
        assert 0 < row["flow_run"] < row["first_scene_start"] < row["first_scene_done"] < row["end"], row
    assert rows["served"]["cluster"] < rows["served"]["imports"], "the warm workers are found before prefect loads"
