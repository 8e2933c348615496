"""The id-filter benchmark times both index paths of the library's IdFilter on a frame it builds itself."""

from __future__ import annotations

import json

import numpy as np
from benchmark_scripts import load_benchmark


def test_both_index_paths_are_timed(tmp_path):
    bench = load_benchmark("id_filter")
    out = tmp_path / "result.json"
    bench.main(["--size", "64", "48", "--valid-ids", "20", "--repeats", "2", "--json", str(out)])
    result = json.loads(out.read_text())
    assert [row["largest_id"] for row in result["rows"]] == [5_000, 10_000_000]
    assert all(row["ms_per_frame"] > 0 for row in result["rows"])


def test_the_frame_has_valid_segments_and_an_invalid_border():
    bench = load_benchmark("id_filter")
    valid = np.array([3, 9, 40], dtype=np.uint32)
    frame = bench.make_frame(64, 48, valid, np.random.default_rng(0))
    assert frame.shape == (48, 64) and frame.dtype == np.uint32
    assert set(np.unique(frame[4:])) <= set(valid.tolist()) and (frame[:4] == 47).all()
