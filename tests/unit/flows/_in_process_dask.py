"""A real Dask cluster inside the test process (threads, no dashboard) and a client on it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from distributed import Client, LocalCluster


@contextmanager
def in_process_client(workers: int, threads_per_worker: int = 1) -> Iterator[Client]:
    with LocalCluster(
        n_workers=workers, threads_per_worker=threads_per_worker, processes=False, dashboard_address=None
    ) as cluster:
        with Client(cluster) as client:
            yield client
