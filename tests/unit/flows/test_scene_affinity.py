"""Home workers of chunked scenes: the least loaded per thread, counted in outstanding frames."""

from __future__ import annotations

import pytest
from _in_process_dask import in_process_client
from distributed import Client, LocalCluster, Worker

from flows.scene_affinity import SceneHomes


@pytest.fixture(scope="module")
def client():
    with in_process_client(2) as dask_client:
        yield dask_client


def test_scenes_go_to_the_worker_with_the_fewest_outstanding_frames(client):
    homes = SceneHomes(client)
    first, second = homes.choose(150), homes.choose(150)
    assert {first, second} == set(client.scheduler_info(n_workers=-1)["workers"])
    assert homes.choose(40) == first  # ties go to the same worker every time: address order
    assert homes.choose(300) == second  # first has 190 outstanding, second 150
    homes.ended(second, 150)
    homes.ended(second, 150)
    homes.ended(second, 150)
    assert homes.outstanding[second] == 0, "never below zero, even when a stolen chunk is counted twice"
    assert homes.choose(10) == second


def test_no_worker_yet_means_no_preference():
    with in_process_client(0) as dask_client:
        homes = SceneHomes(dask_client)
        assert homes.choose(100) is None
        homes.ended(None, 100)  # a scene submitted without a home ends without touching any count
        assert not any(homes.outstanding.values())


def test_a_worker_with_more_threads_takes_more_frames():
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:

        async def three_threads() -> Worker:
            return await Worker(cluster.scheduler_address, nthreads=3)

        wide = cluster.sync(three_threads)
        try:
            with Client(cluster) as dask_client:
                dask_client.wait_for_workers(2)
                homes = SceneHomes(dask_client)
                chosen = [homes.choose(100) for _ in range(4)]
                assert chosen.count(wide.address) == 3  # 0, then 100/3 and 200/3 per thread beat 100
        finally:
            cluster.sync(wide.close)
