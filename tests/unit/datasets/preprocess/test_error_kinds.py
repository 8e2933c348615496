"""Which scene failures are permanent (never retried) and the one line each leaves in the tables."""

import errno

import pytest

from datasets.preprocess.error_kinds import failure_reason, is_bad_input, is_permanent, lasting_os_error
from datasets.preprocess.errors import BadSceneInput, TransientSceneError


def test_bad_input_is_permanent_and_keeps_its_message():
    for exc in (BadSceneInput("x"), FileNotFoundError("x"), KeyError("x")):
        assert is_bad_input(exc) and is_permanent(exc)
    assert not is_permanent(OSError("EGL")) and not is_permanent(TransientSceneError("lost"))
    assert (
        failure_reason(BadSceneInput("scans/segments.json: segIndices\nmore"))
        == "scans/segments.json: segIndices"
    )
    assert failure_reason(KeyError("frame_000120.jpg")) == "frame_000120.jpg"
    assert failure_reason(OSError("EGL context lost")) == "OSError: EGL context lost"
    assert failure_reason(RuntimeError()) == "RuntimeError"


@pytest.mark.parametrize(
    "code, words",
    [
        (errno.ENOSPC, "no space left on device"),
        (errno.EDQUOT, "disk quota exceeded"),
        (errno.EACCES, "permission denied"),
        (errno.EPERM, "operation not permitted"),
        (errno.EROFS, "read-only file system"),
    ],
)
def test_lasting_os_errors_are_permanent_and_name_the_file_and_the_fix(code, words):
    exc = OSError(code, "ignored", "store/scenes.zarr/_staging/x/zarr.json")
    assert is_permanent(exc) and not is_bad_input(exc)
    reason = failure_reason(exc)
    assert reason.startswith(words) and "store/scenes.zarr/_staging/x/zarr.json" in reason
    assert "re-run" in reason or "readable" in reason or "writable" in reason


def test_a_wrapped_os_error_is_found_through_the_cause_chain():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("zarr: could not write chunk") from inner
    except RuntimeError as outer:
        wrapped = outer
    assert lasting_os_error(wrapped).errno == errno.ENOSPC
    assert is_permanent(wrapped) and failure_reason(wrapped).startswith("no space left on device")
    assert lasting_os_error(OSError(errno.EIO, "I/O error")) is None
