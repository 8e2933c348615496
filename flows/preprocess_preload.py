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
