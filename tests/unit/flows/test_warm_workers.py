"""Warm preprocessing workers (flows.warm_workers): which pool a run may use, and the record's life, with a
real Dask cluster as `panst3r serve` starts it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from flows.cache_dir import CACHE_ENV
from flows.dask_cluster import ClusterChoice, choose_cluster
from flows.warm_workers import WarmWorkersHost, find_warm_workers, pool_key, record_path

OPTIONS = {"preload": ["flows.preprocess_preload"]}


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))


@pytest.fixture
def listening():
    """A TCP address that accepts connections, as a scheduler's does."""
    server = socket.create_server(("127.0.0.1", 0))
    yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    server.close()


def _advertise(choice: ClusterChoice, options: dict, record: dict | str, pid: int | None = None) -> None:
    pid = pid if pid is not None else record["pid"]
    path = record_path(pool_key(choice, options), pid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(record if isinstance(record, str) else json.dumps(record))


def test_the_key_names_what_makes_two_local_clusters_the_same(monkeypatch):
    two = choose_cluster(workers=2)
    assert pool_key(two, OPTIONS) == pool_key(choose_cluster(workers=2), {"preload": ["flows.preprocess_preload"]})
    assert pool_key(two, OPTIONS) != pool_key(choose_cluster(workers=1), OPTIONS)
    assert pool_key(two, OPTIONS) != pool_key(two, {})
    before = pool_key(two, OPTIONS)
    monkeypatch.setenv("PYOPENGL_PLATFORM", "osmesa")  # the workers' environment differs
    assert pool_key(two, OPTIONS) != before
    monkeypatch.delenv("PYOPENGL_PLATFORM")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # so does their allocator
    assert pool_key(two, OPTIONS) != before


def test_a_live_advertised_pool_is_found(listening):
    choice = choose_cluster(workers=2)
    _advertise(choice, OPTIONS, {"address": listening, "pid": os.getpid(), "workers": 2})
    pool = find_warm_workers(choice, OPTIONS)
    assert pool is not None and (pool.address, pool.pid, pool.workers) == (listening, os.getpid(), 2)
    assert find_warm_workers(choose_cluster(workers=1), OPTIONS) is None, "another worker count"
    assert find_warm_workers(choose_cluster(dask_address=listening), OPTIONS) is None, "not a local cluster"


def test_records_of_gone_servers_or_torn_records_are_ignored(listening):
    choice = choose_cluster(workers=1)
    assert find_warm_workers(choice, OPTIONS) is None, "nothing advertised"
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _advertise(choice, OPTIONS, {"address": listening, "pid": int(ended.stdout), "workers": 1})
    assert find_warm_workers(choice, OPTIONS) is None, "the serving process is gone"
    assert not record_path(pool_key(choice, OPTIONS), int(ended.stdout)).exists(), "a killed server's record goes"
    closed = socket.create_server(("127.0.0.1", 0))
    address = f"tcp://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()
    _advertise(choice, OPTIONS, {"address": address, "pid": os.getpid(), "workers": 1})
    assert find_warm_workers(choice, OPTIONS) is None, "its scheduler does not answer"
    assert record_path(pool_key(choice, OPTIONS), os.getpid()).exists(), "a live server's record is its own"
    _advertise(choice, OPTIONS, '{"address": "tcp://127.0.0.1:1", "pi', pid=12)
    assert find_warm_workers(choice, OPTIONS) is None, "a torn record"


def test_the_host_advertises_its_running_pool_and_withdraws_it():
    choice = choose_cluster(workers=1)
    with WarmWorkersHost(choice, {}) as host:
        assert host.wait(timeout=180), "the pool did not come up"
        pool = find_warm_workers(choice, {})
        assert pool is not None and pool.address == host.cluster.scheduler_address
        assert len(host.cluster.scheduler_info["workers"]) == 1
        assert "stealing" not in host.cluster.scheduler.extensions, "the flow places its tasks itself"
        cluster = host.cluster
    assert cluster.status.name == "closed"
    assert not record_path(pool_key(choice, {}), os.getpid()).exists()
    assert find_warm_workers(choice, {}) is None


def test_two_servers_of_one_pool_each_keep_their_own_record(listening):
    """A second server's record does not hide the first's pool, nor does its exit withdraw it."""
    choice = choose_cluster(workers=1)
    with WarmWorkersHost(choice, {}) as host:
        assert host.wait(timeout=180)
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            _advertise(choice, {}, {"address": listening, "pid": other.pid, "workers": 1})
            assert find_warm_workers(choice, {}).pid == other.pid, "the newest record first"
            record_path(pool_key(choice, {}), other.pid).unlink()  # the other server stops
            assert find_warm_workers(choice, {}).address == host.cluster.scheduler_address
        finally:
            other.kill()
            other.wait()


def test_only_a_local_cluster_can_be_hosted():
    with pytest.raises(ValueError, match="local cluster"):
        WarmWorkersHost(choose_cluster(dask_address="tcp://127.0.0.1:8786"), {})
