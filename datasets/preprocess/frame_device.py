"""Where a preprocessing worker undistorts and rescales a frame's RGB: on the CPU with OpenCV and Pillow, or on
a CUDA GPU with the same arithmetic in torch (pil_resample.py, opencv_remap.py), with identical pixels.

On a GPU node those two steps were 40 % of a worker's CPU time per ScanNet++ frame; the GPU does them in a
few milliseconds. The choice is the worker's, not the run's (a cluster may mix GPU and CPU nodes), so it is
read from the worker's environment: PANST3R_FRAME_DEVICE = auto (default: CUDA when this process sees a
CUDA device), cpu, or cuda (fail the frame's task when there is none). Before a worker uses the GPU it
checks, once, that torch reproduces this machine's OpenCV and Pillow on probe images (OpenCV changed its
remap arithmetic between versions); when neither remap variant does, it stays on the CPU and says why.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from datasets.preprocess.errors import WorkerSettingError
from datasets.preprocess.rescale import PIL_FILTERS, image_filter, rescale_image
from datasets.preprocess.rescale_plan import RescalePlan
from datasets.preprocess.undistort import UndistortMaps, undistort_image

log = logging.getLogger(__name__)

FRAME_DEVICE_ENV = "PANST3R_FRAME_DEVICE"
CHOICES = ("auto", "cpu", "cuda")
# Present where an NVIDIA driver is loaded; CUDA itself opens /dev/nvidiactl, so no machine where CUDA works
# lacks it. Only then is torch worth importing to look for CUDA.
_NVIDIA_DRIVER = (Path("/proc/driver/nvidia"), Path("/dev/nvidiactl"))


class FrameDeviceError(RuntimeError):
    """The GPU failed a frame (out of memory, a driver or launch error): the frame can be redone on the CPU."""


class CpuFrameOps:
    """OpenCV's remap and Pillow's resize, as the official script runs them."""

    device = "cpu"

    def undistort(self, rgb: np.ndarray, maps: UndistortMaps) -> np.ndarray:
        return undistort_image(rgb, maps)

    def rescale(self, rgb: np.ndarray, plan: RescalePlan) -> Image.Image:
        return rescale_image(rgb, plan)


class TorchFrameOps:
    """The same two steps on a torch device; remap tables and resize weights are kept per camera and size.

    On a CUDA device both steps of a frame are one CUDA graph (captured once per camera and size): the eager
    steps are about a hundred small kernels a frame, and with one GPU shared by a host's workers every launch
    of a process whose context is not the one running waits its turn; a graph is one launch. The kernels are
    the same, so are the pixels."""

    CACHED = 4  # cameras (and sizes) whose tables stay on the device: a scene has one or two

    def __init__(self, device, remap_variant: str, graphs: bool | None = None):
        import torch

        self.torch = torch
        self.device = str(device)
        self._device = torch.device(device)
        self.remap_variant = remap_variant
        self.graphs = self._device.type == "cuda" if graphs is None else graphs
        self._remaps: OrderedDict[int, tuple] = OrderedDict()
        self._resizes: OrderedDict[tuple, object] = OrderedDict()
        self._graphs: OrderedDict[tuple, FrameGraph] = OrderedDict()

    def undistort(self, rgb: np.ndarray, maps: UndistortMaps):
        """-> the undistorted frame as a device tensor (the GPU may still be working on it), or, with graphs,
        the camera's frame uploaded for `rescale` to run both steps; `rgb` is left as it was. FrameDeviceError
        when the device fails."""
        with self._device_errors():
            frame = self.torch.from_numpy(rgb)
            if self.graphs:
                self._remap(maps).upload(frame)
                return _Uploaded(maps)
            return self._remap(maps)(frame.to(self._device))

    def rescale(self, image, plan: RescalePlan) -> np.ndarray:
        """Device tensor -> (H', W', 3) uint8 on the host (waits for the device). FrameDeviceError when it fails."""
        with self._device_errors():
            if isinstance(image, _Uploaded):
                graph = self._graph(image.maps, plan)
                if graph is not None:
                    return graph.replay().cpu().numpy()
                remap = self._remap(image.maps)
                image = remap(remap.buffer)
            return self._resize(plan)(image).cpu().numpy()

    @contextmanager
    def _device_errors(self) -> Iterator[None]:
        # CUDA reports out-of-memory, launch and driver failures as RuntimeError (OutOfMemoryError and
        # AcceleratorError are subclasses); programming errors in this module would be other types.
        try:
            yield
        except RuntimeError as exc:
            raise FrameDeviceError(f"{self.device}: {exc}") from exc

    def _remap(self, maps: UndistortMaps):
        from datasets.preprocess.opencv_remap import TorchRemap

        entry = self._remaps.get(id(maps))
        if entry is None or entry[0] is not maps:  # an id can be reused once its maps are gone
            remap = TorchRemap(maps.map_x, maps.map_y, maps.size, self.remap_variant, self._device)
            entry = self._remaps[id(maps)] = (maps, remap)
            while len(self._remaps) > self.CACHED:
                self._remaps.popitem(last=False)
        return entry[1]

    def _resize(self, plan: RescalePlan):
        from datasets.preprocess.pil_resample import TorchResize

        key = (plan.in_size, plan.out_size, image_filter(plan))
        if key not in self._resizes:
            self._resizes[key] = TorchResize(*key, self._device)
            while len(self._resizes) > self.CACHED:
                self._resizes.popitem(last=False)
        return self._resizes[key]

    def _graph(self, maps: UndistortMaps, plan: RescalePlan) -> FrameGraph | None:
        """The graph of this camera and size (captured now if new); None when capture failed: the frames then
        run eagerly on the device from now on."""
        remap, resize = self._remap(maps), self._resize(plan)
        key = (id(remap), id(resize))
        entry = self._graphs.get(key)
        if entry is None or entry.remap is not remap or entry.resize is not resize:
            try:
                entry = self._graphs[key] = FrameGraph(remap, resize)
            except RuntimeError as exc:
                log.warning("frames run eagerly on %s: capturing a CUDA graph failed (%s)", self.device, exc)
                self.graphs = False
                return None
            while len(self._graphs) > self.CACHED:
                self._graphs.popitem(last=False)
        return entry


class _Uploaded:
    """A frame in its camera's device buffer (TorchRemap.upload), waiting for its graph."""

    def __init__(self, maps: UndistortMaps):
        self.maps = maps


class FrameGraph:
    """One camera's remap followed by one resize, captured as a CUDA graph that reads the camera's upload buffer
    (TorchRemap.upload) and writes one output buffer; `replay()` returns that buffer (valid until the next)."""

    def __init__(self, remap, resize):
        import torch

        self.remap, self.resize = remap, resize
        source = remap.buffer
        side = torch.cuda.Stream(source.device)
        side.wait_stream(torch.cuda.current_stream(source.device))
        with torch.cuda.stream(side):  # one eager run first: lazy initialisation must not happen in capture
            resize(remap(source))
        torch.cuda.current_stream(source.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.output = resize(remap(source))

    def replay(self):
        self.graph.replay()
        return self.output


_ops: CpuFrameOps | TorchFrameOps | None = None


def frame_ops() -> CpuFrameOps | TorchFrameOps:
    """This process's frame operations, chosen on first use from PANST3R_FRAME_DEVICE."""
    global _ops
    if _ops is None:
        _ops = choose_frame_ops(os.environ.get(FRAME_DEVICE_ENV, "auto"))
        log.info("frames are undistorted and rescaled on %s", _ops.device)
    return _ops


def current_frame_device() -> str | None:
    """Where this process has been undistorting and rescaling frames (None: it has processed none yet)."""
    return _ops.device if _ops is not None else None


def fall_back_to_cpu(failure: FrameDeviceError) -> CpuFrameOps:
    """This process's frames go to the CPU from now on (the same pixels, more CPU time), once the GPU failed."""
    global _ops
    log.warning(
        "the GPU failed a frame (%s); this worker undistorts and rescales on the CPU from now on", failure
    )
    _ops = CpuFrameOps()
    return _ops


def choose_frame_ops(setting: str) -> CpuFrameOps | TorchFrameOps:
    setting = setting.strip().lower() or "auto"
    if setting not in CHOICES:
        raise WorkerSettingError(f"{FRAME_DEVICE_ENV}={setting!r}: must be one of {', '.join(CHOICES)}")
    if setting == "cpu" or (setting == "auto" and not _nvidia_driver_loaded()):
        return CpuFrameOps()
    device = _cuda_device()
    if device is None:
        if setting == "cuda":
            raise WorkerSettingError(
                f"{FRAME_DEVICE_ENV}=cuda but this worker sees no CUDA device (torch.cuda.is_available() is "
                "False); set it to auto or cpu"
            )
        return CpuFrameOps()
    variant = matching_remap_variant(device)
    if variant is None or not resize_matches_pillow(device):
        log.warning(
            "frames stay on the CPU: torch on %s does not reproduce this machine's %s bit for bit",
            device,
            "OpenCV remap" if variant is None else "Pillow resize",
        )
        return CpuFrameOps()
    return TorchFrameOps(device, variant)


def _nvidia_driver_loaded() -> bool:
    return any(path.exists() for path in _NVIDIA_DRIVER)


def _cuda_device() -> str | None:
    """A CUDA device for this process: with several, spread processes over them by process id."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.set_num_threads(1)  # the worker's one core; the work is on the GPU
    return f"cuda:{os.getpid() % torch.cuda.device_count()}"


def matching_remap_variant(device) -> str | None:
    """The remap variant that equals cv2.remap here on a probe (fisheye-like tables, borders, random pixels)."""
    import cv2

    from datasets.preprocess.opencv_remap import VARIANTS, TorchRemap

    rng = np.random.default_rng(20261206)
    image = rng.integers(0, 256, (61, 83, 3), dtype=np.uint8)
    map_x = rng.uniform(-20, 103, (47, 71)).astype(np.float32)
    map_y = rng.uniform(-20, 81, (47, 71)).astype(np.float32)
    expected = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    for variant in VARIANTS:
        remap = TorchRemap(map_x, map_y, (83, 61), variant, device)
        got = _on_host(remap(_to_device(image, device)))
        if np.array_equal(got, expected):
            return variant
    return None


def resize_matches_pillow(device) -> bool:
    """Pillow's LANCZOS (shrinking) and BICUBIC (enlarging) equal the torch resize here on probe images."""
    from datasets.preprocess.pil_resample import TorchResize

    rng = np.random.default_rng(20261207)
    image = rng.integers(0, 256, (57, 89, 3), dtype=np.uint8)
    for size, name in (((53, 31), "lanczos"), ((131, 70), "bicubic")):
        expected = np.asarray(Image.fromarray(image).resize(size, resample=PIL_FILTERS[name]))
        got = _on_host(TorchResize((89, 57), size, name, device)(_to_device(image, device)))
        if not np.array_equal(got, expected):
            return False
    return True


def _to_device(image: np.ndarray, device):
    import torch

    return torch.from_numpy(image).to(device)


def _on_host(tensor) -> np.ndarray:
    return tensor.cpu().numpy()
