"""The frame-device benchmark times both paths on a DSLR-sized frame and checks that their pixels agree
(here with torch on the CPU: the GPU machine runs it with --device cuda)."""

from __future__ import annotations

import json

import pytest
from benchmark_scripts import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("frame_device")


def test_both_paths_timed_and_identical(bench, tmp_path):
    out = tmp_path / "result.json"
    assert bench.main(["--device", "cpu", "--frames", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["frame"] == "OPENCV_FISHEYE 1752x1168 -> 1035x690"
    assert result["identical_pixels"] is True
    assert result["remap_variant"] in ("fixed_point", "float_fma")
    assert result["cpu_seconds_per_frame"] > 0 and result["torch_seconds_per_frame"] > 0
