"""The task runner of the preprocess flow: the warm workers of a running `panst3r serve` when they are the
cluster this run would start (flows.warm_workers), else the run's own cluster (flows.dask_cluster).

The choice is made when the flow run starts its runner, in the flow run's own process: a served deployment
run is a fresh process that may start after the serving process's pool came up, and a flow object (with its
runner) is pickled into that process as it was when it was loaded."""

from __future__ import annotations

from prefect_dask import DaskTaskRunner

from flows.dask_cluster import (
    PREPROCESS_WORK_STEALING,
    PREPROCESS_WORKER_OPTIONS,
    ClusterChoice,
    local_cluster_kwargs,
    make_task_runner,
    spawn_workers_with_allocator_env,
)
from flows.warm_workers import find_warm_workers


class WarmOrLocalTaskRunner(DaskTaskRunner):
    """A DaskTaskRunner for a local cluster of `choice` that connects to matching warm workers instead."""

    def __init__(self, choice: ClusterChoice, worker_options: dict | None = None):
        self.choice = choice
        self.worker_options = worker_options
        spawn_workers_with_allocator_env()
        super().__init__(
            cluster_class="distributed.LocalCluster",
            cluster_kwargs=local_cluster_kwargs(choice, worker_options, PREPROCESS_WORK_STEALING),
        )

    def duplicate(self) -> WarmOrLocalTaskRunner:
        return type(self)(self.choice, self.worker_options)

    @property
    def client(self):
        if self._client is None and self.address is None:
            warm = find_warm_workers(self.choice, self.worker_options)
            if warm is not None:
                self.address = warm.address
                self.logger.info(warm.describe())
        return DaskTaskRunner.client.fget(self)


def preprocess_task_runner(
    choice: ClusterChoice, worker_options: dict | None = PREPROCESS_WORKER_OPTIONS
) -> DaskTaskRunner:
    """The runner of `choice` for preprocessing: warm workers are considered for a local cluster only."""
    if choice.kind == "local":
        return WarmOrLocalTaskRunner(choice, worker_options)
    return make_task_runner(choice, worker_options, PREPROCESS_WORK_STEALING)
