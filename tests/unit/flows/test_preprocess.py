"""The preprocess flow's pieces that need no cluster: retry decisions and the task runner choice."""

import errno

import pytest
from prefect.states import Failed

from datasets.preprocess.errors import BadSceneInput, TransientSceneError
from flows.preprocess import _retry_transient, make_task_runner


@pytest.mark.parametrize(
    "exc, retry",
    [
        (BadSceneInput("scans/segments.json: segIndices are not 0..N-1"), False),
        (FileNotFoundError("dslr/colmap/cameras.txt"), False),
        (KeyError("DSC00001.JPG"), False),
        (TransientSceneError("EGL context lost"), True),
        (OSError(errno.ENOSPC, "No space left on device"), False),
        (PermissionError(errno.EACCES, "Permission denied", "scans/segments.json"), False),
        (OSError("EGL: eglMakeCurrent failed"), True),
    ],
)
def test_only_transient_errors_are_retried(exc, retry):
    assert _retry_transient(None, None, Failed(data=exc)) is retry


def test_task_runner_choice():
    local = make_task_runner(3)
    assert local.cluster_kwargs["n_workers"] == 3 and local.cluster_kwargs["threads_per_worker"] == 1
    assert local.cluster_kwargs["env"]["PYOPENGL_PLATFORM"]
    assert make_task_runner(2, "tcp://127.0.0.1:8786").address == "tcp://127.0.0.1:8786"
    with pytest.raises(ValueError, match="--workers must be at least 1"):
        make_task_runner(0)
