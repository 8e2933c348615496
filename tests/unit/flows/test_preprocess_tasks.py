"""The preprocess flow's tasks: which failures they retry."""

import errno

import pytest
from prefect.states import Failed

from datasets.preprocess.errors import BadSceneInput, TransientSceneError
from flows.preprocess_tasks import retry_transient


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
    assert retry_transient(None, None, Failed(data=exc)) is retry
