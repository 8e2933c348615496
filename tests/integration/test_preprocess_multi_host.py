"""`panst3r preprocess --dask-address` on a Dask cluster spread over three "hosts" (network namespaces with
addresses of their own: `dask scheduler` on one, a `dask worker` on each of the two others), the store on
the filesystem every host sees. One worker host is killed mid-run (every process in it); nothing committed
is lost or half-visible, and the re-run on the surviving host does exactly the missing scenes.

The scheduler runs with Dask's `distributed.scheduler.allowed-failures: 0`, so a scene whose worker dies
fails at once instead of being retried elsewhere in the same run: that is what leaves scenes for the
re-run to finish. Where namespaces cannot be made, the loopback variant runs the same scenario with
separate scheduler and worker processes on 127.0.14.x (PANST3R_TEST_HOSTS=loopback forces it).
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from _preprocess_support import (
    REPO,
    assert_store_consistent,
    cli_env,
    make_root,
    preprocess_command,
    run_preprocess,
    start_prefect_server,
    wait_for_commits,
)
from dask_hosts import DaskHosts, namespaces_unavailable

from datasets.store.schema import StoreLayout

pytestmark = pytest.mark.slow

SCENES = 6
GIVE_UP_AT_FIRST_LOST_WORKER = {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}


def _namespaces_reason() -> str | None:
    if os.environ.get("PANST3R_TEST_HOSTS") == "loopback":
        return "PANST3R_TEST_HOSTS=loopback"
    return namespaces_unavailable()


def test_across_network_namespaces(tmp_path):
    reason = _namespaces_reason()
    if reason:
        pytest.skip(f"network namespaces cannot be made here ({reason}); the loopback variant runs instead")
    _kill_a_worker_host_then_rerun(tmp_path, namespaces=True)


def test_across_loopback_hosts(tmp_path):
    if _namespaces_reason() is None:
        pytest.skip("network namespaces work here: test_across_network_namespaces covers this scenario")
    _kill_a_worker_host_then_rerun(tmp_path, namespaces=False)


def _wait_until_busy(hosts: DaskHosts, name: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if hosts.processing().get(name):
            return
        if process.poll() is not None:
            pytest.fail(f"the run ended (rc {process.returncode}) before {name} took a scene")
        time.sleep(0.2)
    pytest.fail(f"{name} took no scene within {timeout} s")


def _kill_a_worker_host_then_rerun(tmp_path, namespaces: bool) -> None:
    root, pairs = make_root(tmp_path / "data", num_scenes=SCENES, seed=41)
    scene_ids = sorted(p.name for p in (root / "data").iterdir())
    store = tmp_path / "store"
    with DaskHosts(2, tmp_path / "hosts", namespaces, GIVE_UP_AT_FIRST_LOST_WORKER) as hosts:
        # The Prefect API listens on the gateway: the tasks report to it from the worker hosts.
        server = start_prefect_server(tmp_path / "prefect", host=hosts.gateway)
        try:
            env = cli_env(server.api_url, tmp_path / "prefect")
            addresses = hosts.worker_addresses()
            assert sorted(addresses) == ["host1", "host2"]
            doomed = hosts.workers[0]
            first = _first_run_losing(doomed, hosts, env, root, pairs, store, tmp_path, scene_ids)
            assert any(addresses[doomed.name] in reason for reason in first["failed"].values()), first
            committed = assert_store_consistent(store)
            assert committed == first["done"], "every scene the run reported done is committed, no other"

            _, again = run_preprocess(
                env, root, pairs, store, tmp_path / "rerun.json", "--dask-address", hosts.address
            )
        finally:
            server.stop()
    assert again["skipped"] == committed and not again["failed"]
    assert again["done"] == sorted(set(scene_ids) - set(committed)) == sorted(first["failed"])
    assert assert_store_consistent(store) == scene_ids
    assert not StoreLayout(store).staging_dir.exists(), "the re-run sweeps the killed writer's staging"


def _first_run_losing(doomed, hosts, env, root, pairs, store, tmp_path, scene_ids) -> dict:
    """Start preprocess on the hosts, kill `doomed` while it holds a scene, return the run's summary."""
    summary_path = tmp_path / "first.json"
    command = preprocess_command(
        root, pairs, store, "--dask-address", hosts.address, "--summary-json", str(summary_path)
    )
    log = open(tmp_path / "first.log", "w")
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_commits(store, 1, process)
        _wait_until_busy(hosts, doomed.name, process)
        doomed.kill()
        assert doomed.pids() == [], f"{doomed.name} still runs processes"
        code = process.wait(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        log.close()
    output = (tmp_path / "first.log").read_text()[-4000:]
    assert code == 1, f"a failed scene must make the run exit 1 (got {code}):\n{output}"
    summary = json.loads(summary_path.read_text())
    assert summary["failed"], output
    assert sorted(summary["done"] + list(summary["failed"])) == scene_ids
    return summary
