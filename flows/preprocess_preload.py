"""Dask worker preload of `panst3r preprocess`: the modules a preprocess task needs, imported while the
worker starts.

Why: otherwise the first task that reaches a worker pays for them (prefect, the flow, the store writers,
pyrender and OpenGL: seconds on a small machine) after the run has already waited for the Prefect server;
at worker start they load in parallel with the server's boot and the flow run's creation. No GL context
is made here (EGL contexts are per thread, made by the task's own thread); the frame device is chosen here.
"""

from __future__ import annotations

import pyrender  # noqa: F401 - imported by the first render otherwise; PYOPENGL_PLATFORM comes from WORKER_ENV

import datasets.preprocess.chunk_job  # noqa: F401 - the frame-chunk and commit steps
import datasets.preprocess.scene_job  # noqa: F401 - the whole-scene step and its readers/writers
import flows.preprocess  # noqa: F401 - the flow (Prefect ships it with each task) and its tasks (prefect, the store)
from datasets.preprocess.errors import WorkerSettingError  # noqa: E402
from datasets.preprocess.frame_device import frame_ops  # noqa: E402

# Where this worker undistorts and rescales frames: on a GPU node this imports torch, makes the CUDA context
# and runs the exactness probes now rather than in the first task. A wrong PANST3R_FRAME_DEVICE must not stop
# the worker from starting: each task then fails with the message.
try:
    frame_ops()
except WorkerSettingError:
    pass

# Dask's statistical profiler samples every worker thread's stack every 10 ms, taking the GIL from the task's
# thread each time: without it one worker preprocessed 7 % more frames per second (2-core VM, median of seven
# interleaved pairs, 8.86 -> 9.47; docs/benchmarks/preprocess_worker_profiler_cpu.json), part of the 20 % a
# frame cost a Dask worker more than a plain process on the GPU machine. The dashboard's profile of a
# preprocessing worker stays empty.
PROFILER_CALLBACKS = ("profile", "profile-cycle")


def dask_setup(worker) -> None:
    """Called by Dask in each worker that preloads this module, before the worker starts its periodic
    callbacks: the profiler's are removed."""
    for name in PROFILER_CALLBACKS:
        callback = worker.periodic_callbacks.pop(name, None)
        if callback is not None:
            callback.stop()
