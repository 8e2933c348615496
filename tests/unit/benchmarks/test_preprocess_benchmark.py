"""The preprocess benchmark's settings and its scaling efficiency, on hand-made rows."""

from __future__ import annotations

import pytest
from benchmark_scripts import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("preprocess")


def test_efficiency_is_throughput_over_workers_times_the_single_worker_throughput(bench):
    rows = [
        {"store": "local", "workers": w, "frames_per_second": fps}
        for w, fps in ((1, 2.0), (2, 3.0), (8, 8.0))
    ] + [
        {"store": "s3", "workers": 2, "frames_per_second": 2.0},
        {"store": "s3", "workers": 4, "frames_per_second": 3.0},
    ]
    bench.add_efficiency(rows)
    assert [r["scaling_efficiency"] for r in rows] == [1.0, 0.75, 0.5, 1.0, 0.75]
    # worker counts measured in a later run: the base comes from the earlier result's rows
    later = [{"store": "local", "workers": 16, "frames_per_second": 24.0}]
    bench.add_efficiency(later, earlier=rows)
    assert later[0]["scaling_efficiency"] == 0.75


def test_each_frame_device_is_its_own_efficiency_base(bench):
    rows = [
        {"store": "local", "frame_device": device, "workers": w, "frames_per_second": fps}
        for device, w, fps in (("cpu", 1, 2.0), ("cpu", 4, 6.0), ("cuda", 1, 4.0), ("cuda", 4, 8.0))
    ]
    bench.add_efficiency(rows)
    assert [r["scaling_efficiency"] for r in rows] == [1.0, 0.75, 1.0, 0.5]
    # Rows written before frame devices existed ran on the CPU's setting "auto".
    old = [{"store": "local", "workers": 1, "frames_per_second": 1.0}]
    later = [{"store": "local", "frame_device": "auto", "workers": 2, "frames_per_second": 1.5}]
    bench.add_efficiency(later, earlier=old)
    assert later[0]["scaling_efficiency"] == 0.75


def test_frame_devices_flag(bench):
    assert bench.parse_args([]).frame_devices == ["auto"]
    assert bench.parse_args(["--frame-devices", "cpu", "cuda"]).frame_devices == ["cpu", "cuda"]
    with pytest.raises(SystemExit):
        bench.parse_args(["--frame-devices", "gpu"])


def test_preset_settings_and_overrides(bench):
    args = bench.parse_args(
        ["--preset", "scannetpp", "--frames", "10", "--workers", "1", "2", "4", "8", "16"]
    )
    settings = bench.generator_settings(args)
    assert settings["frames"] == 10 and settings["image_size"] == (1752, 1168)
    assert settings["mesh_faces"] >= 200_000 and settings["camera_model"] == "OPENCV_FISHEYE"
    assert args.workers == [1, 2, 4, 8, 16]
    assert bench.generator_settings(bench.parse_args([])) == {"frames": 8, "camera_model": "OPENCV_FISHEYE"}
    with pytest.raises(SystemExit):
        bench.parse_args(["--workers", "0", "2"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scenes", "4", "--scenes-per-worker", "2", "--workers", "1", "4"], "needs --scenes >= 8"),
        (["--keep-root", "KEPT", "--root", "R"], "give one of them"),
        (["--keep-root", "FULL"], "is not empty"),
    ],
)
def test_bad_flag_combinations_are_one_clear_error(bench, tmp_path, capsys, argv, message):
    (tmp_path / "FULL").mkdir()
    (tmp_path / "FULL" / "root").mkdir()
    argv = [str(tmp_path / a) if a in ("KEPT", "FULL", "R") else a for a in argv]
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
