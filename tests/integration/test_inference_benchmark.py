"""Smoke test of the GPU inference benchmark script, run on the CPU with the tiny variant."""

import json

import pytest
import torch
from benchmark_scripts import load_benchmark


def _load_script():
    return load_benchmark("inference")


def test_benchmark_runs_tiny_on_cpu_and_writes_results(tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "inference.json"
    argv = ["--device", "cpu", "--variant", "tiny_v1", "--views", "4", "--precision", "fp32"]
    argv += ["--width", "128", "--height", "96", "--repeats", "1", "--warmup", "0", "--out", str(out)]
    assert _load_script().main(argv) == 0
    report = json.loads(out.read_text())
    (row,) = report["results"]
    assert row["variant"] == "tiny_v1" and row["views"] == 4 and row["keyframes"] == 4
    assert row["resolution"] == "128x96" and row["precision"] == "fp32"
    assert row["end_to_end_s"] > 0 and row["images_per_s"] > 0
    # both fields are rounded from the same unrounded seconds: agree up to the rounding of each
    assert row["images_per_s"] == pytest.approx(4 / row["end_to_end_s"], abs=0.011, rel=1e-3)
    assert {"inference", "postprocess"} <= set(row["stages_s"]) and row["peak_gpu_mem_gib"] is None
    printed = capsys.readouterr().out
    assert "tiny_v1" in printed and str(out) in printed
    # --append keeps earlier rows
    assert _load_script().main([*argv, "--append"]) == 0
    assert len(json.loads(out.read_text())["results"]) == 2
    # a streamed run's rows say their chunk size (and unchunked rows say None)
    assert _load_script().main([*argv, "--append", "--chunk-views", "2"]) == 0
    rows = json.loads(out.read_text())["results"]
    assert [r["chunk_views"] for r in rows] == [None, None, 2]


def test_rows_per_encoder_setting_with_their_deviation(tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "inference.json"
    argv = ["--device", "cpu", "--variant", "tiny_v1", "--views", "3", "--precision", "fp32"]
    argv += ["--encoder-attention", "exact", "tf32", "--repeats", "1", "--warmup", "0", "--out", str(out)]
    assert _load_script().main(argv) == 0
    rows = json.loads(out.read_text())["results"]
    # tf32 attention runs on CUDA only: on the CPU the second row runs (and records) exact attention
    assert [(r["encoder_attention"], r["compile"]) for r in rows] == [("exact", "off")] * 2
    assert rows[1]["deviation"]["from"]["encoder_attention"] == "exact"
    assert rows[1]["deviation"]["pts3d_median_relative_difference"] == 0.0
    assert rows[1]["deviation"]["panoptic_pixel_agreement"] == 1.0
