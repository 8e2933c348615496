"""Where a worker undistorts and rescales frames: the choice from PANST3R_FRAME_DEVICE, the probes that check
torch against this machine's OpenCV and Pillow, and whole scenes preprocessed both ways being identical."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datasets.preprocess import frame_device
from datasets.preprocess.errors import BadSceneInput, WorkerSettingError
from datasets.preprocess.frame_device import (
    CpuFrameOps,
    TorchFrameOps,
    choose_frame_ops,
    matching_remap_variant,
    resize_matches_pillow,
)
from datasets.preprocess.rescale_plan import rescale_plan
from datasets.preprocess.result import PreprocessConfig
from datasets.preprocess.scene import preprocess_scene
from datasets.preprocess.undistort import undistortion_maps
from datasets.scannetpp.reader import read_scene
from datasets.scannetpp.record import CameraModel

from .conftest import SCENE_ID

CUDA = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
"""Marks of a test parameter that runs on a GPU only."""
DSLR = CameraModel("OPENCV_FISHEYE", 1752, 1168, (790.0, 791.0, 877.2, 583.9, 0.05, -0.02, 0.01, -0.003))


def test_cpu_setting_and_no_driver_keep_the_cpu(monkeypatch):
    assert isinstance(choose_frame_ops("cpu"), CpuFrameOps)
    monkeypatch.setattr(frame_device, "_nvidia_driver_loaded", lambda: False)
    assert isinstance(choose_frame_ops("auto"), CpuFrameOps)
    assert isinstance(choose_frame_ops(" AUTO "), CpuFrameOps)


def test_auto_without_cuda_keeps_the_cpu_and_cuda_without_it_is_an_error(monkeypatch):
    monkeypatch.setattr(frame_device, "_nvidia_driver_loaded", lambda: True)
    monkeypatch.setattr(frame_device, "_cuda_device", lambda: None)
    assert isinstance(choose_frame_ops("auto"), CpuFrameOps)
    with pytest.raises(
        WorkerSettingError, match="PANST3R_FRAME_DEVICE=cuda but this worker sees no CUDA device"
    ):
        choose_frame_ops("cuda")


def test_unknown_setting_names_the_variable_and_the_choices():
    assert issubclass(WorkerSettingError, BadSceneInput)  # not retried, one message per scene
    with pytest.raises(
        WorkerSettingError, match=r"PANST3R_FRAME_DEVICE='gpu': must be one of auto, cpu, cuda"
    ):
        choose_frame_ops("gpu")


def test_a_device_that_does_not_reproduce_opencv_stays_on_the_cpu(monkeypatch, caplog):
    monkeypatch.setattr(frame_device, "_nvidia_driver_loaded", lambda: True)
    monkeypatch.setattr(frame_device, "_cuda_device", lambda: "cpu")
    monkeypatch.setattr(frame_device, "matching_remap_variant", lambda device: None)
    assert isinstance(choose_frame_ops("cuda"), CpuFrameOps)
    assert "does not reproduce this machine's OpenCV remap" in caplog.text


def test_a_device_that_reproduces_both_is_used(monkeypatch):
    monkeypatch.setattr(frame_device, "_nvidia_driver_loaded", lambda: True)
    monkeypatch.setattr(frame_device, "_cuda_device", lambda: "cpu")
    ops = choose_frame_ops("auto")
    assert isinstance(ops, TorchFrameOps) and ops.device == "cpu"


def test_the_probes_find_this_machines_arithmetic():
    assert matching_remap_variant("cpu") in ("fixed_point", "float_fma")
    assert resize_matches_pillow("cpu")


def frame_pair(device: str) -> tuple[np.ndarray, np.ndarray]:
    """A ScanNet++-sized fisheye frame undistorted and rescaled by OpenCV/Pillow and by torch on `device`."""
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, (DSLR.height, DSLR.width, 3), dtype=np.uint8)
    maps = undistortion_maps(DSLR)
    plan = rescale_plan(DSLR.width, DSLR.height, 920)
    cpu = CpuFrameOps()
    expected = np.asarray(cpu.rescale(cpu.undistort(rgb, maps), plan))
    ops = TorchFrameOps(device, matching_remap_variant(device))
    got = ops.rescale(ops.undistort(rgb, maps), plan)
    return got, expected


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_a_dslr_frame_is_identical_with_torch(device):
    got, expected = frame_pair(device)
    assert got.shape == (690, 1035, 3)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("graphs", [pytest.param(True, marks=CUDA), pytest.param(False, marks=CUDA)])
def test_successive_frames_of_two_sizes_through_cuda_graphs_are_identical(graphs):
    """A graph reads the camera's one upload buffer and writes one output buffer: each frame must still get
    its own pixels, for either output size."""
    rng = np.random.default_rng(5)
    maps = undistortion_maps(DSLR)
    cpu = CpuFrameOps()
    ops = TorchFrameOps("cuda", matching_remap_variant("cuda"), graphs=graphs)
    for target in (920, 920, 512, 920):
        rgb = rng.integers(0, 256, (DSLR.height, DSLR.width, 3), dtype=np.uint8)
        plan = rescale_plan(DSLR.width, DSLR.height, target)
        expected = np.asarray(cpu.rescale(cpu.undistort(rgb, maps), plan))
        np.testing.assert_array_equal(ops.rescale(ops.undistort(rgb, maps), plan), expected)
    assert len(ops._graphs) == (2 if graphs else 0)


def test_graphs_are_for_cuda_devices_only():
    assert not TorchFrameOps("cpu", matching_remap_variant("cpu")).graphs


def test_a_graph_that_cannot_be_captured_leaves_the_frames_eager_with_the_same_pixels(monkeypatch, caplog):
    """A capture that fails (a driver without graph support, out of memory) leaves the uploaded frame to be
    remapped eagerly, here and from then on."""

    def refuse(*_):
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing")

    monkeypatch.setattr(frame_device, "FrameGraph", refuse)
    rng = np.random.default_rng(6)
    rgb = rng.integers(0, 256, (DSLR.height, DSLR.width, 3), dtype=np.uint8)
    maps, plan, cpu = undistortion_maps(DSLR), rescale_plan(DSLR.width, DSLR.height, 920), CpuFrameOps()
    ops = TorchFrameOps("cpu", matching_remap_variant("cpu"), graphs=True)
    got = ops.rescale(ops.undistort(rgb, maps), plan)
    np.testing.assert_array_equal(got, np.asarray(cpu.rescale(cpu.undistort(rgb, maps), plan)))
    assert not ops.graphs and "capturing a CUDA graph failed" in caplog.text


def test_tables_are_kept_per_camera_and_size():
    ops = TorchFrameOps("cpu", matching_remap_variant("cpu"))
    maps = undistortion_maps(DSLR)
    assert ops._remap(maps) is ops._remap(maps)
    plan = rescale_plan(DSLR.width, DSLR.height, 920)
    assert ops._resize(plan) is ops._resize(plan)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_a_scene_preprocessed_with_torch_is_identical(mini_scene, monkeypatch, device):
    root, pairs_dir, _selection = mini_scene
    record = read_scene(root, SCENE_ID, pairs_dir)
    monkeypatch.setattr(frame_device, "_ops", CpuFrameOps())
    expected = preprocess_scene(record, PreprocessConfig())
    monkeypatch.setattr(frame_device, "_ops", TorchFrameOps(device, matching_remap_variant(device)))
    got = preprocess_scene(record, PreprocessConfig())
    assert got.frame_order == expected.frame_order
    for camera, block in expected.blocks.items():
        for field in ("images", "depth_mm", "panoptic", "intrinsics", "cam_to_world"):
            np.testing.assert_array_equal(
                getattr(got.blocks[camera], field), getattr(block, field), err_msg=field
            )
    np.testing.assert_array_equal(got.pairs, expected.pairs)


class FailingGpu(TorchFrameOps):
    """Torch ops whose device fails on the third frame, as a GPU shared with a training job can run out of
    memory."""

    def __init__(self):
        super().__init__("cpu", matching_remap_variant("cpu"))
        self.frames = 0

    def undistort(self, rgb, maps):
        self.frames += 1
        if self.frames == 3:
            with self._device_errors():
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 48.00 MiB")
        return super().undistort(rgb, maps)


def test_a_gpu_failure_moves_the_worker_to_the_cpu_with_the_same_output(mini_scene, monkeypatch, caplog):
    root, pairs_dir, _selection = mini_scene
    record = read_scene(root, SCENE_ID, pairs_dir)
    monkeypatch.setattr(frame_device, "_ops", CpuFrameOps())
    expected = preprocess_scene(record, PreprocessConfig())
    failing = FailingGpu()
    monkeypatch.setattr(frame_device, "_ops", failing)
    got = preprocess_scene(record, PreprocessConfig())
    assert failing.frames == 3  # the failed frame and every later one went to the CPU
    assert isinstance(frame_device._ops, CpuFrameOps)
    assert "the GPU failed a frame (cpu: CUDA out of memory" in caplog.text
    for camera, block in expected.blocks.items():
        np.testing.assert_array_equal(got.blocks[camera].images, block.images)


def test_current_frame_device_names_what_this_process_uses(monkeypatch):
    monkeypatch.setattr(frame_device, "_ops", None)
    assert frame_device.current_frame_device() is None
    monkeypatch.setenv("PANST3R_FRAME_DEVICE", "cpu")
    frame_device.frame_ops()
    assert frame_device.current_frame_device() == "cpu"
