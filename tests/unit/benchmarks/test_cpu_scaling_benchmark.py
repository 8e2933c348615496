"""The CPU scaling benchmark runs both kernels in 1 and 2 processes at once and reports their throughput."""

from __future__ import annotations

import json
import zlib

import pytest
from benchmark_scripts import load_benchmark


@pytest.fixture(scope="module")
def bench():
    # Loaded under its file's name: its spawned processes import it by that name.
    return load_benchmark("cpu_scaling", "cpu_scaling")


def test_both_kernels_measured_per_process_and_in_total(bench, tmp_path):
    out = tmp_path / "result.json"
    assert bench.main(["--processes", "1", "2", "--seconds", "0.3", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["benchmark"] == "cpu_scaling" and "physical cores" in result["machine"]
    assert result["settings"] == {"processes": [1, 2], "seconds": 0.3}
    assert [row["processes"] for row in result["rows"]] == [1, 2]
    for row in result["rows"]:
        for kernel, unit in (("zlib", "mb_per_second"), ("copy", "gb_per_second")):
            numbers = row[kernel]
            assert len(numbers[f"{unit}_per_process"]) == row["processes"]
            assert min(numbers[f"{unit}_per_process"]) > 0 and numbers[f"total_{unit}"] > 0
            assert numbers[f"mean_{unit}_per_process"] > 0 and numbers["relative_per_process"] > 0
    assert result["rows"][0]["zlib"]["relative_per_process"] == 1.0


def test_the_buffer_is_the_same_in_every_process(bench):
    data = bench.compressible_buffer()
    assert len(data) == 256 * 1024 and data == bench.compressible_buffer()
    assert 0.3 < len(zlib.compress(data, 6)) / len(data) < 0.7  # half random, half repetitive
