"""One GPU per Dask worker for batch prediction.

A local cluster gets one worker per visible GPU; worker i sees only the i-th GPU (CUDA_VISIBLE_DEVICES,
set by a worker plugin before anything in the worker touches CUDA), so inside a worker "cuda" is its own
GPU and a model loaded there never lands on another worker's device. Each worker also declares the Dask
resource GPU=1, and tasks that need a GPU ask for it, so a cluster never runs two on one worker; its second
thread runs a task that needs no GPU (writing a scene) beside it. On a machine without GPUs the workers are
plain CPU workers. Workers of an existing cluster (`--dask-address`) are pinned by whoever started them
(e.g. dask-cuda's `dask cuda worker`, one per GPU).

Importing this module imports no Prefect.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from distributed import WorkerPlugin

GPU_RESOURCE = "GPU"
VISIBLE_DEVICES_ENV = "CUDA_VISIBLE_DEVICES"


def visible_gpus() -> tuple[str, ...]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries (the user's own selection is kept:
    with CUDA_VISIBLE_DEVICES=2,3 the workers get 2 and 3); empty without CUDA."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    selected = [d.strip() for d in os.environ.get(VISIBLE_DEVICES_ENV, "").split(",") if d.strip()]
    if VISIBLE_DEVICES_ENV in os.environ:
        return tuple(selected[:count])
    return tuple(str(i) for i in range(count))


class PinGpu(WorkerPlugin):
    """Worker i of a local cluster (LocalCluster names its workers 0, 1, ...) sees only devices[i % n]."""

    name = "panst3r-pin-gpu"

    def __init__(self, devices: tuple[str, ...]):
        if not devices:
            raise ValueError("PinGpu needs at least one GPU to pin workers to")
        self.devices = tuple(devices)

    def setup(self, worker) -> None:
        os.environ[VISIBLE_DEVICES_ENV] = self.devices[worker_index(worker.name) % len(self.devices)]


def worker_index(name) -> int:
    """The index of a LocalCluster worker from its name; 0 for other names (a lone worker)."""
    text = str(name)
    return int(text) if text.isdigit() else 0


@dataclass(frozen=True)
class WorkerLayout:
    """How a local cluster's workers use the machine's devices."""

    workers: int
    gpus: tuple[str, ...]
    """The GPUs the workers are pinned to; empty: CPU workers."""

    @property
    def device(self) -> str:
        """The device a worker predicts on: "cuda" is the worker's own GPU once pinned."""
        return "cuda" if self.gpus else "cpu"

    def local_worker_options(self) -> dict:
        """LocalCluster arguments: the pinning plugin, the GPU resource and a second thread (for a task that
        needs no GPU, e.g. writing a scene while the next one is predicted); none for CPU workers, whose
        one thread is the CPU that predicting would share."""
        if not self.gpus:
            return {}
        return {"plugins": {PinGpu(self.gpus)}, "resources": {GPU_RESOURCE: 1}, "threads_per_worker": 2}

    def describe(self) -> str:
        if not self.gpus:
            return f"{self.workers} CPU worker(s)"
        return f"{self.workers} worker(s) on GPU(s) {', '.join(self.gpus)} (one GPU per worker)"


def local_layout(device: str, workers: int | None, default_cpu_workers: int = 2) -> WorkerLayout:
    """Workers of a local cluster for `device` (auto, cuda or cpu): one per visible GPU unless `workers` says
    otherwise (more workers than GPUs share them round-robin), `default_cpu_workers` on the CPU."""
    gpus = visible_gpus() if device in ("auto", "cuda") else ()
    if device == "cuda" and not gpus:
        raise ValueError("--device cuda: no GPU is visible on this machine; use --device cpu or auto")
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    return WorkerLayout(workers or (len(gpus) if gpus else default_cpu_workers), gpus)


@contextmanager
def gpu_tasks(uses_gpu: bool) -> Iterator[None]:
    """Tasks submitted inside ask each for one GPU resource when `uses_gpu`: one task per GPU at a time."""
    if not uses_gpu:
        with nullcontext():
            yield
        return
    import dask

    with dask.annotate(resources={GPU_RESOURCE: 1}):
        yield
