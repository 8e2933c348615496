"""The shutdown-heartbeat filter, on real Dask workers: installed by the common preload in every worker of
the project's local clusters; it drops only the heartbeat failure, and only once its worker is closing."""

from __future__ import annotations

import logging
import os

import pytest
from distributed import Client, LocalCluster

from flows.dask_cluster import choose_cluster, local_cluster_kwargs, spawn_workers_with_allocator_env
from flows.worker_shutdown_log import HEARTBEAT_FAILURE, WORKER_LOGGER, ShutdownHeartbeatFilter

OTHER_ERROR = "Unexpected exception during heartbeat. Closing worker."


@pytest.fixture(autouse=True)
def _same_environment_after():
    """A Nanny applies distributed.nanny.pre-spawn-environ to this process's environment before it spawns."""
    environ = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(environ)


@pytest.fixture
def worker_logger():
    """The worker logger, its filters restored afterwards (an in-process worker installs one)."""
    logger = logging.getLogger(WORKER_LOGGER)
    before = list(logger.filters)
    yield logger
    logger.filters[:] = before


def _logged(caplog, logger, message) -> bool:
    caplog.clear()
    logger.error(message)
    return any(record.getMessage() == message for record in caplog.records)


def test_the_heartbeat_failure_is_dropped_only_once_the_worker_closes(caplog, worker_logger):
    with LocalCluster(
        n_workers=1, processes=False, dashboard_address=None, preload=["flows.worker_shutdown_log"]
    ) as cluster:
        worker = next(iter(cluster.workers.values()))
        assert any(isinstance(f, ShutdownHeartbeatFilter) and f.worker is worker for f in worker_logger.filters)
        assert _logged(caplog, worker_logger, HEARTBEAT_FAILURE), "a running worker's lost scheduler is hidden"
    assert _logged(caplog, worker_logger, OTHER_ERROR)
    assert not _logged(caplog, worker_logger, HEARTBEAT_FAILURE)


def _has_filter() -> bool:
    return any(isinstance(f, ShutdownHeartbeatFilter) for f in logging.getLogger(WORKER_LOGGER).filters)


def test_every_local_cluster_worker_process_preloads_it():
    options = {"preload": ["flows.preprocess_preload"]}
    kwargs = local_cluster_kwargs(choose_cluster(workers=1), options)
    assert kwargs["preload"] == ["flows.worker_shutdown_log", "flows.preprocess_preload"]
    spawn_workers_with_allocator_env()
    with LocalCluster(**{**kwargs, "preload": kwargs["preload"][:1]}) as cluster, Client(cluster) as client:
        assert list(client.run(_has_filter).values()) == [True]
