"""One GPU per worker: the pinning plugin on a real LocalCluster (pinning CPU workers to GPU names only sets
their CUDA_VISIBLE_DEVICES, so it runs without GPUs), and the local cluster's layout per device."""

from __future__ import annotations

import os

import pytest
import torch

from flows.dask_cluster import choose_cluster, make_task_runner
from flows.gpu_workers import GPU_RESOURCE, WorkerLayout, gpu_tasks, local_layout, visible_gpus, worker_index


def _visible_devices() -> str | None:
    return os.environ.get("CUDA_VISIBLE_DEVICES")


@pytest.mark.slow  # a LocalCluster of two processes: a second alone, far more on a loaded machine
def test_each_local_worker_sees_only_its_own_gpu_and_gpu_tasks_run():
    from distributed import Client, LocalCluster

    layout = WorkerLayout(2, ("5", "7"))
    kwargs = make_task_runner(choose_cluster(workers=2), layout.local_worker_options()).cluster_kwargs
    with LocalCluster(**kwargs) as cluster, Client(cluster) as client:
        assert sorted(client.run(_visible_devices).values()) == ["5", "7"]
        workers = client.scheduler_info()["workers"].values()
        assert all(w["resources"] == {GPU_RESOURCE: 1} and w["nthreads"] == 2 for w in workers)
        with gpu_tasks(True):
            futures = [client.submit(_visible_devices, pure=False) for _ in range(4)]
        assert set(client.gather(futures)) <= {"5", "7"}
        # Two GPU tasks never share a worker's GPU; a task without the resource runs beside one.
        with gpu_tasks(True):
            held = [client.submit(_hold, 1.5, pure=False, workers=[w]) for w in client.scheduler_info()["workers"]]
        beside = client.submit(_visible_devices, pure=False)
        assert beside.result(timeout=30) in {"5", "7"} and not any(f.done() for f in held)
        client.gather(held)


def _hold(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


def test_without_gpus_the_workers_are_cpu_workers():
    if torch.cuda.is_available():
        pytest.skip("this machine has GPUs")
    assert visible_gpus() == ()
    assert local_layout("auto", None) == WorkerLayout(2, ())
    assert local_layout("cpu", 3).device == "cpu" and local_layout("cpu", 3).local_worker_options() == {}
    with pytest.raises(ValueError, match="--device cuda: no GPU is visible"):
        local_layout("cuda", None)
    with pytest.raises(ValueError, match="--workers must be at least 1"):
        local_layout("cpu", 0)


def test_the_users_gpu_selection_is_kept(monkeypatch):
    # The CUDA runtime cannot be made to see GPUs here; only its two answers are stood in for.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    layout = local_layout("auto", None)
    assert layout == WorkerLayout(2, ("2", "3")) and layout.device == "cuda"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert local_layout("cuda", 4).gpus == ("0", "1")  # more workers than GPUs share them round-robin


def test_worker_names_give_the_index():
    assert [worker_index(n) for n in (0, "3", "tcp-worker")] == [0, 3, 0]
