"""The pointmap-resolution benchmark, for real: the shipped synthetic model scores the held-out views of a
store of preprocessed synthetic scenes at two input resolutions, one row each with the library's metrics."""

from __future__ import annotations

import json
import subprocess
import sys

from _preprocess_support import REPO, make_root, preprocess_in_process


def test_one_row_per_resolution(tmp_path):
    from datasets.store.tables import read_table

    root, pairs = make_root(tmp_path / "data", num_scenes=3, seed=12, frames=3)
    store = preprocess_in_process(root, tmp_path / "store", target_resolution=64, pairs=pairs)
    held_out = int((read_table(store, "scenes")["split"].astype(str) == "val").sum())
    assert held_out > 0
    out = tmp_path / "rows.json"
    command = [sys.executable, str(REPO / "tests" / "benchmarks" / "pointmap_resolutions.py"),
               "--model", "shipped:compact_smooth_v2_synthetic", "--eval", f"{store}=64,48", f"{store}=48,32", "--json", str(out)]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [row["resolution"] for row in rows] == [[64, 48], [48, 32]]
    for row in rows:
        assert row["scenes"] == held_out and row["views"] == 3 * held_out
        assert row["median_rel_error_global"] >= 0 and 0 <= row["focal_within_tolerance"] <= 1
