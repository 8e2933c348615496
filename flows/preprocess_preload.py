"""Dask worker preload of `panst3r preprocess`: the modules a preprocess task needs, imported while the
worker starts.

Why: otherwise the first task that reaches a worker pays for them (prefect, the flow, the store writers,
pyrender and OpenGL: seconds on a small machine) after the run has already waited for the Prefect server;
at worker start they load in parallel with the server's boot and the flow run's creation. Imports only:
no GL context is made here (EGL contexts are per thread, made by the task's own thread).
"""

from __future__ import annotations

import pyrender  # noqa: F401 - imported by the first render otherwise; PYOPENGL_PLATFORM comes from WORKER_ENV

import datasets.preprocess.chunk_job  # noqa: F401 - the frame-chunk and commit steps
import datasets.preprocess.scene_job  # noqa: F401 - the whole-scene step and its readers/writers
import flows.preprocess  # noqa: F401 - the tasks' module itself (prefect, the store)
