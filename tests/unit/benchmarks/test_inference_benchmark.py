"""The inference benchmark on the CPU with the tiny model: one row per setting, each naming what ran, and the
deviation of every row from the first of its precision and views."""

from __future__ import annotations

import json

import pytest
from benchmark_scripts import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("inference")


def test_rows_per_encoder_attention_with_their_deviation(bench, tmp_path):
    out = tmp_path / "inference.json"
    argv = ["--device", "cpu", "--variant", "tiny_v1", "--views", "3", "--precision", "fp32"]
    argv += ["--encoder-attention", "exact", "tf32", "--repeats", "1", "--warmup", "0", "--out", str(out)]
    assert bench.main(argv) == 0
    rows = json.loads(out.read_text())["results"]
    assert [(r["encoder_attention"], r["compile"]) for r in rows] == [("exact", "off")] * 2  # tf32: CUDA only
    assert rows[1]["deviation"]["from"]["encoder_attention"] == "exact"
    assert rows[1]["deviation"]["pts3d_median_relative_difference"] == 0.0
    assert all(r["images_per_s"] > 0 and r["segments"] >= 1 for r in rows)
