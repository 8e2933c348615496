"""A finished Prefect task's outcome as the flows record it: its result or its exception."""

from __future__ import annotations


def task_outcome(future) -> tuple[object | None, BaseException | None]:
    """The task's result or exception, from Dask alone: `future.state` asks the Prefect server, which
    retries for about a minute per call when the server is gone, and a scene's outcome does not need it."""
    try:
        future.wait()
        outcome = future.result(raise_on_failure=False)
    except BaseException as exc:  # noqa: BLE001 - e.g. KilledWorker when Dask gives up on a scene
        return None, exc
    if isinstance(outcome, BaseException):
        return None, outcome
    return outcome, None
