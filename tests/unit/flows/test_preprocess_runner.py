"""The preprocess flow's task runner (flows.preprocess_runner): the warm workers of a running `panst3r serve`
when they match, else the run's own local cluster; real Dask clusters."""

from __future__ import annotations

import pickle

import pytest
from prefect_dask import DaskTaskRunner

from flows.cache_dir import CACHE_ENV
from flows.dask_cluster import choose_cluster
from flows.preprocess_runner import WarmOrLocalTaskRunner, preprocess_task_runner
from flows.warm_workers import WarmWorkersHost


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))


def test_only_local_clusters_consider_warm_workers():
    local = preprocess_task_runner(choose_cluster(workers=3))
    assert isinstance(local, WarmOrLocalTaskRunner) and local.cluster_kwargs["n_workers"] == 3
    assert local.cluster_kwargs["preload"] == ["flows.worker_shutdown_log", "flows.preprocess_preload"]
    remote = preprocess_task_runner(choose_cluster(dask_address="tcp://127.0.0.1:8786"))
    assert type(remote) is DaskTaskRunner and remote.address == "tcp://127.0.0.1:8786"


def test_copies_keep_the_choice():
    runner = preprocess_task_runner(choose_cluster(workers=2))
    for copy in (runner.duplicate(), pickle.loads(pickle.dumps(runner))):
        assert isinstance(copy, WarmOrLocalTaskRunner)
        assert (copy.choice, copy.worker_options) == (runner.choice, runner.worker_options)
        assert copy == runner


def test_a_run_uses_matching_warm_workers_and_leaves_them_running():
    choice = choose_cluster(workers=1)
    with WarmWorkersHost(choice, {}) as host:
        assert host.wait(timeout=180)
        runner = WarmOrLocalTaskRunner(choice, {}).duplicate()  # a flow run starts a duplicate
        with runner:
            assert runner.client.scheduler.address == host.cluster.scheduler_address
            assert runner.client.submit(sum, [1, 2]).result(timeout=60) == 3
        assert host.cluster.status.name == "running", "the run closed the warm pool"
        assert len(host.cluster.scheduler_info["workers"]) == 1


def test_without_warm_workers_a_run_starts_and_closes_its_own_cluster():
    runner = WarmOrLocalTaskRunner(choose_cluster(workers=1), {}).duplicate()
    with runner:
        assert runner.client.submit(sum, [2, 3]).result(timeout=60) == 5
        cluster = runner._cluster
        assert cluster is not None and runner.address is None
    assert cluster.status.name == "closed"
