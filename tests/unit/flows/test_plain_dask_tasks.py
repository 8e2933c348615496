"""Plain Dask tasks of a flow run: retried unless permanent, outcomes as (result, error), on a real cluster."""

from __future__ import annotations

import logging
import time

import pytest
from _in_process_dask import in_process_client

from datasets.preprocess.error_kinds import is_permanent
from datasets.preprocess.errors import BadSceneInput, TransientSceneError
from flows.plain_dask_tasks import Attempts, flow_run_client, plain_outcome, run_with_retries, submit_plain


class FailsFirst:
    """Raises `error` on the first `failures` calls, then returns "done"."""

    def __init__(self, failures: int, error: Exception):
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "done"


def test_a_transient_failure_is_retried_with_a_warning(caplog):
    job = FailsFirst(2, TransientSceneError("EGL context lost"))
    with caplog.at_level(logging.WARNING, logger="flows.plain_dask_tasks"):
        attempts = run_with_retries("chunk-a-dslr-0", job, (), 2, 0.0, is_permanent)
    assert attempts == Attempts("done", ("TransientSceneError: EGL context lost",) * 2)
    assert job.calls == 3
    assert [r.getMessage() for r in caplog.records] == [
        "chunk-a-dslr-0 failed (TransientSceneError: EGL context lost); retry 1 of 2 in 0 s",
        "chunk-a-dslr-0 failed (TransientSceneError: EGL context lost); retry 2 of 2 in 0 s",
    ]


def test_a_permanent_failure_is_raised_at_once():
    job = FailsFirst(1, BadSceneInput("scans/segments.json: segIndices are not 0..N-1"))
    with pytest.raises(BadSceneInput):
        run_with_retries("chunk-a-dslr-0", job, (), 2, 0.0, is_permanent)
    assert job.calls == 1


def test_the_last_transient_failure_is_raised_when_retries_run_out():
    job = FailsFirst(5, TransientSceneError("EGL context lost"))
    with pytest.raises(TransientSceneError):
        run_with_retries("chunk-a-dslr-0", job, (), 2, 0.0, is_permanent)
    assert job.calls == 3


def _double(x: int) -> int:
    return 2 * x


def _slow(x: int) -> int:
    time.sleep(1.0)
    return x


def _refuse(x: int) -> int:
    raise BadSceneInput(f"frame {x}: unreadable JPEG")


@pytest.fixture(scope="module")
def client():
    with in_process_client(1) as dask_client:
        yield dask_client


def test_a_plain_task_runs_on_the_cluster_under_its_name(client):
    future = submit_plain(
        client, "chunk-s1-dslr-16", _double, 21, retries=2, retry_delay_seconds=0, is_permanent=is_permanent
    )
    assert plain_outcome(future) == (42, None, ())
    assert future.key.startswith("chunk-s1-dslr-16-")
    again = submit_plain(
        client, "chunk-s1-dslr-16", _double, 21, retries=2, retry_delay_seconds=0, is_permanent=is_permanent
    )
    assert again.key != future.key, "every submission is its own task, even with equal arguments"


def test_a_failed_plain_task_gives_its_own_error(client):
    future = submit_plain(
        client, "chunk-s1-dslr-0", _refuse, 3, retries=2, retry_delay_seconds=0, is_permanent=is_permanent
    )
    result, error, retried = plain_outcome(future)
    assert retried == ()
    assert result is None
    assert isinstance(error, BadSceneInput) and "frame 3" in str(error)


def test_a_cancelled_plain_task_gives_an_error(client):
    future = submit_plain(
        client, "chunk-s1-dslr-0", _slow, 1, retries=0, retry_delay_seconds=0, is_permanent=is_permanent
    )
    future.cancel()
    result, error, retried = plain_outcome(future)
    assert retried == ()
    assert result is None and error is not None


def test_outside_a_flow_run_there_is_no_client():
    with pytest.raises(RuntimeError, match="running flow"):
        flow_run_client()


def test_a_first_time_success_has_nothing_retried():
    assert run_with_retries("chunk-a-dslr-0", lambda: 7, (), 2, 0.0, is_permanent) == Attempts(7, ())


_flaky_calls: dict[str, int] = {}


def _fails_once(name: str) -> str:
    _flaky_calls[name] = _flaky_calls.get(name, 0) + 1
    if _flaky_calls[name] == 1:
        raise TransientSceneError("EGL context lost")
    return name


def test_the_outcome_of_a_retried_plain_task_names_what_was_retried(client):
    future = submit_plain(
        client, "chunk-s2-dslr-0", _fails_once, "s2", retries=2, retry_delay_seconds=0, is_permanent=is_permanent
    )
    assert plain_outcome(future) == ("s2", None, ("TransientSceneError: EGL context lost",))
