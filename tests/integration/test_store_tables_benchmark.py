"""The store-tables benchmark, for real: a store of two preprocessed synthetic scenes, its tables built cold
through this tree's library under two labels; every row counts the store's scenes, frames and pairs."""

from __future__ import annotations

import json
import subprocess
import sys

from _preprocess_support import REPO, make_root, preprocess_in_process


def test_rows_and_medians(tmp_path):
    root, pairs = make_root(tmp_path / "data", num_scenes=2, seed=6)
    store = preprocess_in_process(root, tmp_path / "store", target_resolution=64, pairs=pairs)
    out = tmp_path / "tables.json"
    command = [sys.executable, str(REPO / "tests" / "benchmarks" / "store_tables.py"), "--store", str(store),
               "--code", f"a={REPO}", f"b={REPO}", "--runs", "1", "--json", str(out)]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [row["code"] for row in report["rows"]] == ["a", "b"]
    for row in report["rows"]:
        assert row["scenes"] == 2 and row["frames"] > 0 and row["pairs"] > 0
        assert row["ms_per_scene"] == 1000 * row["seconds"] / 2
    assert set(report["medians"]) == {"a", "b"} and set(report["medians"]["a"]) == {"seconds", "ms_per_scene"}
