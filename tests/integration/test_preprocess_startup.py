"""The local Dask cluster that `panst3r preprocess` starts early (flows.early_cluster), with real clusters."""

from __future__ import annotations

import pickle
import sqlite3
import subprocess
import sys

import pytest
from _preprocess_support import REPO, cli_env, make_root

from datasets.store.backend import backend_for
from flows.cache_dir import CACHE_ENV
from flows.dask_cluster import choose_cluster
from flows.early_cluster import ClusterStartError, EarlyCluster

# The CLI as `panst3r preprocess` runs it, with a worker preload that cannot be imported: the workers
# fail to start, for real, the way a broken environment would make them.
_CLI_WITH_BROKEN_WORKERS = """
import sys
import flows.cli.preprocess
from flows.cli.main import main
flows.cli.preprocess.PREPROCESS_WORKER_OPTIONS = {"preload": ["panst3r_no_such_module"]}
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_cluster_that_cannot_start_ends_the_run_with_one_clear_error(prefect_server, tmp_path):
    root, pairs = make_root(tmp_path / "synthetic", num_scenes=1, seed=5)
    store = tmp_path / "store"
    command = [sys.executable, "-c", _CLI_WITH_BROKEN_WORKERS, "preprocess", "--root", str(root),
               "--pairs", str(pairs), "--store", str(store), "--workers", "1"]  # fmt: skip
    result = subprocess.run(
        command, cwd=REPO, env=cli_env(*prefect_server), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the local Dask cluster of 1 worker(s) did not start"), last
    if store.exists():  # the flow may have created the store before it asked for the cluster
        assert list(backend_for(store).committed_scene_ids()) == [], "no scene was committed"


def test_a_cluster_no_flow_took_is_closed_at_exit():
    with EarlyCluster(choose_cluster(workers=1)) as early:
        early._thread.join()  # as if every scene were up to date: nobody asks for the cluster
        cluster = early._cluster
        assert cluster is not None and len(cluster.workers) == 1
        assert "stealing" not in cluster.scheduler.extensions, "the flow places its tasks itself"
    assert cluster.status.name == "closed"


def test_the_runner_reaches_the_workers_without_its_cluster():
    """Prefect pickles the flow's task runner into every task; the copy must not drag the thread or the
    cluster along, and cannot be asked for a cluster in the worker."""
    early = EarlyCluster(choose_cluster(workers=1), {"preload": ["flows.preprocess_preload"]})
    runner = early.task_runner()
    copy = pickle.loads(pickle.dumps(runner))
    with pytest.raises(RuntimeError, match="not started in this process"):
        copy.cluster_class()
    assert copy.cluster_class.__self__.worker_options == early.worker_options


def test_the_start_error_is_one_the_cli_reports_as_a_line():
    assert issubclass(ClusterStartError, ConnectionError), "flows.cli.main prints ConnectionError as one line"


@pytest.mark.slow
def test_a_server_on_a_seeded_home_answers_and_keeps_its_own_records(tmp_path, monkeypatch):
    """The first server on a fresh home leaves the template; the next fresh home starts from it, and its
    server serves the API (a flow created there stays in that home's database, not in the template)."""
    import json
    import urllib.request

    from flows import prefect_home_template as template
    from flows.prefect_env import LocalServer, free_port

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    for home in (tmp_path / "first", tmp_path / "second"):
        monkeypatch.setenv("PREFECT_HOME", str(home))
        seeded_before_start = template.template_dir().exists()
        server = LocalServer(free_port()).start()
        try:
            request = urllib.request.Request(
                f"{server.api_url}/flows/", data=json.dumps({"name": f"probe-{home.name}"}).encode(),
                headers={"Content-Type": "application/json"}, method="POST",
            )  # fmt: skip
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status in (200, 201)
        finally:
            server.stop()
        assert template.template_dir().is_dir(), "the first fresh home leaves the template"
        assert seeded_before_start == (home.name == "second")
    copy = sqlite3.connect(template.template_dir() / template.DATABASE)
    assert copy.execute("SELECT count(*) FROM flow").fetchone() == (0,), "no run data in the template"
