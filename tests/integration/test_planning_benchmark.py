"""The planning benchmark, for real: two synthetic scenes planned through this tree's library, twice under
two labels; the first plan comes before all plans, and every input file is read (an empty digest cache)."""

from __future__ import annotations

import json
import subprocess
import sys

from _preprocess_support import REPO, make_root


def test_rows_and_medians(tmp_path):
    root, pairs = make_root(tmp_path / "data", num_scenes=2, seed=5)
    out = tmp_path / "planning.json"
    command = [sys.executable, str(REPO / "tests" / "benchmarks" / "preprocess_planning.py"), "--root", str(root),
               "--pairs", str(pairs), "--code", f"a={REPO}", f"b={REPO}", "--runs", "1", "--json", str(out)]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [row["code"] for row in report["rows"]] == ["a", "b"]
    for row in report["rows"]:
        assert row["scenes"] == 2 and row["files_read"] > 0
        assert 0 < row["first_plan"] <= row["all_plans"]
    assert set(report["medians"]) == {"a", "b"}
    assert str(tmp_path) not in json.dumps(report["settings"]), "settings name no local path"
