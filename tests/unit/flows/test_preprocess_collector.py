"""The preprocess flow's loop without a Prefect server: retried chunks in the flow log."""

import logging

from _in_process_dask import in_process_client

from datasets.preprocess.chunk_job import FrameChunk, StagedScene
from datasets.preprocess.scene_job import ScenePlan
from flows.plain_dask_tasks import Attempts
from flows.preprocess_collector import Collector, SceneWork


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
