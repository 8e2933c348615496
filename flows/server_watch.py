"""Notice when the Prefect server stops answering, so that a run can finish its own work without it.

Dask and the store need no Prefect server: after it dies, tasks keep running and scenes keep being
committed. Prefect itself, though, retries each call to a dead server for about a minute, and its
bookkeeping of a flow run makes several such calls after the flow's function returns; a killed server
once turned into a 7-minute hang that ended in tracebacks. A watch thread polls the server's `/health`;
when it has not answered for `grace_s`, the watch reports the loss once and quiets Prefect's complaints
about every call it can no longer make. The caller ends the run as soon as its work is done.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from flows.prefect_env import api_healthy

log = logging.getLogger(__name__)

# Loggers through which Prefect reports each event or log line it could not deliver.
_CHATTY_WHEN_OFFLINE = ("prefect._internal.concurrency", "prefect.events.clients", "prefect.client")


class ServerWatch:
    """A daemon thread polling `api_url`; `lost` is set once the server stays silent for `grace_s`."""

    def __init__(
        self,
        api_url: str,
        interval_s: float = 1.0,
        grace_s: float = 3.0,
        on_lost: Callable[[], None] | None = None,
    ):
        self.api_url = api_url
        self.on_lost = on_lost or quiet_prefect_everywhere
        self.interval_s = interval_s
        self.grace_s = grace_s
        self.lost = threading.Event()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prefect-server-watch", daemon=True)

    def __enter__(self) -> ServerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 3)

    def is_lost(self, attempts: int = 3) -> bool:
        """True when the server is gone, asking it again now if the watch has not noticed yet (a run can
        finish inside the grace period); a busy server gets `attempts` chances before it counts as lost."""
        for attempt in range(attempts):
            if self.lost.is_set() or api_healthy(self.api_url, timeout=2.0):
                return self.lost.is_set()
            if attempt + 1 < attempts:
                time.sleep(self.interval_s)
        self._mark_lost()
        return True

    def _run(self) -> None:
        last_answer = time.monotonic()
        while not self._stop.wait(self.interval_s) and not self.lost.is_set():
            if api_healthy(self.api_url, timeout=self.interval_s):
                last_answer = time.monotonic()
            elif time.monotonic() - last_answer > self.grace_s:
                self._mark_lost()

    def _mark_lost(self) -> None:
        with self._lock:
            if self.lost.is_set():
                return
            log.warning(
                "the Prefect server at %s stopped answering; the run carries on without it and ends "
                "when its own work is done (Prefect's record of this flow run stays incomplete)",
                self.api_url,
            )
            self.on_lost()
            self.lost.set()


def quiet_prefect_everywhere() -> None:
    """In this process and in the workers of its Dask cluster, whose tasks report their states too."""
    quiet_prefect_offline()
    quiet_dask_workers()


def quiet_prefect_offline() -> None:
    """Stop Prefect from reporting, line by line, every log record and event it cannot send any more."""
    from prefect.logging.handlers import APILogHandler

    for name in _CHATTY_WHEN_OFFLINE:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    loggers = [logging.getLogger()] + [
        item for item in logging.Logger.manager.loggerDict.values() if isinstance(item, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, APILogHandler):
                handler.addFilter(lambda record: False)
    # Records queued before this point still fail; Prefect prints each failed batch unless told not to.
    logging.raiseExceptions = False


def quiet_dask_workers() -> None:
    """`quiet_prefect_offline` in every worker of this process's Dask cluster."""
    try:
        from distributed import default_client

        default_client().run(quiet_prefect_offline)
    except Exception as exc:  # noqa: BLE001 - no cluster, or one that is going away: nothing to quiet
        log.debug("could not quiet the Dask workers: %s", exc)


def stop_dask_cluster(timeout_s: float = 20.0) -> None:
    """Close the Dask cluster this process started for the flow (a cluster given by address is left
    running; only the connection to it closes). For runs that end without Prefect's own teardown."""
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):  # no Dask client in this process
        return
    if client.cluster is not None:
        client.cluster.close(timeout=timeout_s)
    client.close(timeout=timeout_s)
