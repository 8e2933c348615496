"""A local Dask cluster started in the background at the very beginning of a run.

Why: a LocalCluster needs seconds (worker processes spawn, import distributed and the task's modules), and
so do the Prefect server's boot, the CLI's own imports of prefect and the flow run's creation. Started one
after the other, as Prefect would when the first task is submitted, these add up; started together, the
run waits only for the longest. The flow's DaskTaskRunner takes the cluster when it submits its first
task (waiting for it then if it is not up yet) and closes it when the flow run ends, as it would close a
cluster it made itself.

Importing this module imports neither Prefect nor Dask: the CLI starts the cluster before Prefect's settings
are in place.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from flows.dask_cluster import (
    PREPROCESS_WORK_STEALING,
    ClusterChoice,
    local_cluster_kwargs,
    make_task_runner,
    spawn_workers_with_allocator_env,
)

if TYPE_CHECKING:
    from prefect_dask import DaskTaskRunner

log = logging.getLogger(__name__)


class ClusterStartError(ConnectionError):
    """The local Dask cluster could not start (the CLI reports it as one line, like a server it cannot reach)."""


class EarlyCluster:
    """Starts the local cluster of `choice` in a thread on `__enter__` (other kinds: nothing early; the runner
    connects or submits Slurm jobs as before). Use `task_runner()` for the flow; `__exit__` closes a cluster
    that no runner took (e.g. every scene was up to date)."""

    def __init__(self, choice: ClusterChoice, worker_options: dict | None = None):
        self.choice = choice
        self.worker_options = worker_options or {}
        self._cluster: Any = None
        self._error: BaseException | None = None
        self._taken = False
        self._thread = threading.Thread(target=self._start, name="dask-cluster-start", daemon=True)

    def __reduce__(self):
        # Prefect ships the flow, its task runner and so this object's `take` with every task to the
        # workers; there it arrives as an inert copy (no thread, no cluster), never asked for a cluster.
        return (EarlyCluster, (self.choice, self.worker_options))

    def __enter__(self) -> EarlyCluster:
        if self.choice.kind == "local":
            spawn_workers_with_allocator_env()  # dask's config is global: set here, not in the thread
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.choice.kind != "local":
            return
        self._thread.join()
        if self._cluster is not None and not self._taken:
            self._cluster.close()

    def _start(self) -> None:
        started = time.perf_counter()
        try:
            from distributed import LocalCluster

            self._cluster = LocalCluster(
                **local_cluster_kwargs(self.choice, self.worker_options, PREPROCESS_WORK_STEALING)
            )
        except BaseException as exc:  # noqa: BLE001 - handed to whoever takes the cluster
            self._error = exc
            return
        log.info("Dask cluster up: %d workers in %.1f s", self.choice.workers, time.perf_counter() - started)

    def take(self, **_ignored) -> Any:
        """The started cluster, waiting for it (ClusterStartError with the cause if it failed). The runner
        calls this in place of a cluster class, with that class's keyword arguments, which are already used."""
        if not self._thread.is_alive() and self._cluster is None and self._error is None:
            raise RuntimeError("this cluster was not started in this process (enter the EarlyCluster first)")
        self._thread.join()
        if self._error is not None:
            raise ClusterStartError(
                f"the local Dask cluster of {self.choice.workers} worker(s) did not start: "
                f"{type(self._error).__name__}: {self._error} (the workers' own errors are logged above; "
                "fewer --workers need less memory)"
            ) from self._error
        self._taken = True
        return self._cluster

    def task_runner(self) -> DaskTaskRunner:
        """The flow's runner: this cluster for `local`, else the usual runner of the choice (imports prefect)."""
        if self.choice.kind != "local":
            return make_task_runner(self.choice, self.worker_options, PREPROCESS_WORK_STEALING)
        from prefect_dask import DaskTaskRunner

        # A callable cluster class is instantiated (here: waited for) on the first submit and entered as a
        # context, so the runner closes it with the flow run, as it closes a cluster it creates.
        return DaskTaskRunner(cluster_class=self.take)
