"""The preprocess workers' preload: a real worker that loads it runs no statistical profiler, and keeps its
other periodic work (heartbeats)."""

from __future__ import annotations

from distributed import Client, LocalCluster

from flows.preprocess_preload import PROFILER_CALLBACKS


def _callbacks(dask_worker) -> list[str]:
    return sorted(dask_worker.periodic_callbacks)


def _profile_samples(dask_worker) -> int:
    return dask_worker.profile_recent["count"]


def _busy() -> float:
    import time

    end = time.perf_counter() + 0.3
    while time.perf_counter() < end:
        pass
    return end


def test_a_worker_with_the_preload_runs_no_profiler():
    kwargs = {"n_workers": 1, "threads_per_worker": 1, "processes": False, "dashboard_address": None}
    with LocalCluster(**kwargs, preload=["flows.preprocess_preload"]) as cluster, Client(cluster) as client:
        client.submit(_busy, pure=False).result()
        callbacks = next(iter(client.run(_callbacks).values()))
        assert not set(PROFILER_CALLBACKS) & set(callbacks)
        assert "heartbeat" in callbacks
        assert next(iter(client.run(_profile_samples).values())) == 0
    with LocalCluster(**kwargs) as cluster, Client(cluster) as client:  # Dask's default, for contrast
        client.submit(_busy, pure=False).result()
        assert set(PROFILER_CALLBACKS) <= set(next(iter(client.run(_callbacks).values())))
        assert next(iter(client.run(_profile_samples).values())) > 0
