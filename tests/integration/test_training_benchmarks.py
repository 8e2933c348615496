"""The training benchmark scripts run end to end in their CPU smoke settings and write their JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _preprocess_support import make_root, preprocess_in_process

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "tests" / "benchmarks" / name), *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_train_benchmark_cpu_smoke(tmp_path):
    out = tmp_path / "train.json"
    result = run_script(
        "train.py",
        "--device",
        "cpu",
        "--variant",
        "tiny_v1",
        "--views",
        "3",
        "--resolution",
        "64",
        "48",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--precisions",
        "fp32",
        "--num-points",
        "256",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["variant"] == "tiny_v1" and report["world_size"] == 1
    (row,) = report["results"]
    assert row["precision"] == "fp32" and row["samples_per_s"] > 0 and row["trainable_parameters"] > 0
    assert "samples/s" in result.stdout


def test_train_benchmark_on_a_store_batch(tmp_path):
    """--store: the step runs on real samples, whose object counts (what the matcher pads to) are reported."""
    root, pairs = make_root(tmp_path / "data", num_scenes=2, seed=5, frames=4)
    store = preprocess_in_process(root, tmp_path / "store", target_resolution=64, pairs=pairs)
    out = tmp_path / "train.json"
    result = run_script(
        "train.py",
        *("--device", "cpu", "--variant", "tiny_v1", "--views", "3", "--resolution", "64", "48"),
        *("--batch-size", "2", "--steps", "1", "--warmup", "1", "--precisions", "fp32"),
        *("--num-points", "256", "--store", str(store), "--out", str(out)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["batch_source"] == str(store)
    (row,) = report["results"]
    assert len(row["objects_per_sample"]) == 2 and min(row["objects_per_sample"]) > 0
    assert row["samples_per_s"] > 0 and row["last_loss"] > 0


def test_loader_benchmark_quick(tmp_path):
    out = tmp_path / "loader.json"
    result = run_script("loader.py", "--quick", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [row["workers"] for row in report["results"]] == [0, 2]
    assert all(row["samples_per_s"] > 0 and row["samples"] > 0 for row in report["results"])
