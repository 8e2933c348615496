"""The preprocess flow's pieces that need no Prefect server: retry decisions, retried chunks in the flow log."""

import errno
import logging

import pytest
from _in_process_dask import in_process_client
from prefect.states import Failed

from datasets.preprocess.chunk_job import FrameChunk, StagedScene
from datasets.preprocess.errors import BadSceneInput, TransientSceneError
from datasets.preprocess.scene_job import ScenePlan
from flows.plain_dask_tasks import Attempts
from flows.preprocess_collector import Collector, SceneWork
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



def _succeeds_after_one_retry():
    return Attempts({"frames": 16}, ("TransientSceneError: EGL context lost",))


def test_a_chunk_that_succeeded_after_retries_is_reported_in_the_flow_log(caplog):
    logger = logging.getLogger("test-flow-run")
    work = SceneWork(ScenePlan("0a5c013435", True, "hash", "not in the store"), "train")
    work.staged = StagedScene("staging-1", [FrameChunk("dslr", 0, 16), FrameChunk("dslr", 16, 32)])
    collector = Collector(logger, None, "", None, {}, None, None)
    with in_process_client(1) as client, caplog.at_level(logging.WARNING, logger="test-flow-run"):
        future = client.submit(_succeeds_after_one_retry)
        assert collector._chunk_outcome(work, 1, future) == ({"frames": 16}, None)
    assert [r.getMessage() for r in caplog.records if r.name == "test-flow-run"] == [
        "scene 0a5c013435: dslr frames 16-31 succeeded on attempt 2 (before: TransientSceneError: EGL context lost)"
    ]
