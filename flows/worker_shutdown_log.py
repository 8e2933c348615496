"""Dask worker preload that keeps one known shutdown race out of the run's output.

Why: a worker that closes while its heartbeat to the scheduler is in flight closes that connection under
the heartbeat itself, which then logs "Failed to communicate with scheduler during heartbeat." with a full
traceback (dask/distributed#7105, still open). It happens at random when a run's own cluster closes after
a run that went well, and reads like a failure. Only that message, and only once the worker is closing,
is dropped: a heartbeat that fails while the worker runs (a lost scheduler) is still logged.

Importing this module imports no Prefect; Dask imports it in every worker of the project's clusters.
"""

from __future__ import annotations

import logging
import weakref

from distributed.core import Status

WORKER_LOGGER = "distributed.worker"
HEARTBEAT_FAILURE = "Failed to communicate with scheduler during heartbeat."
_CLOSING = frozenset({Status.closing, Status.closed, Status.failed})


class ShutdownHeartbeatFilter(logging.Filter):
    """Drops the heartbeat failure of `worker` once it is closing. The filter stays on the logger after the
    worker is gone (a preload's teardown runs before the race), so it holds the worker weakly."""

    def __init__(self, worker):
        super().__init__()
        self._worker = weakref.ref(worker)

    @property
    def worker(self):
        """The worker, None once it was garbage-collected (then closed for good)."""
        return self._worker()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage() != HEARTBEAT_FAILURE:
            return True
        worker = self.worker
        return worker is not None and worker.status not in _CLOSING


def dask_setup(worker) -> None:
    """Called by Dask in each worker that preloads this module."""
    logging.getLogger(WORKER_LOGGER).addFilter(ShutdownHeartbeatFilter(worker))
