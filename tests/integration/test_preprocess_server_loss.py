"""SIGKILL of the Prefect server in the middle of `panst3r preprocess`: the run ends as soon as its scenes
are done, with its summary and one message; the store's commits are the truth (no committed scene is
called failed) and a re-run finds everything done."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from _preprocess_support import (
    REPO,
    cli_env,
    make_root,
    preprocess_command,
    run_preprocess,
    start_prefect_server,
)

from datasets.store.reader import StoreReader
from datasets.store.schema import StoreLayout
from datasets.store.tables import read_table

pytestmark = pytest.mark.slow


def _wait_for_a_scene_in_flight(store, process, timeout=300):
    """Until a task writes its first scene into staging, i.e. the flow has handed its scenes to Dask."""
    staging = StoreLayout(store).staging_dir
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if staging.is_dir() and any(staging.iterdir()):
            return
        if process.poll() is not None:
            pytest.fail(f"preprocess ended (rc {process.returncode}) before any scene was being written")
        time.sleep(0.02)
    pytest.fail(f"no scene was being written within {timeout} s")


def test_killing_the_prefect_server_mid_run(tmp_path, prefect_server):
    root, pairs = make_root(tmp_path / "data", num_scenes=4, seed=31, frames=4)
    scene_ids = sorted(p.name for p in (root / "data").iterdir())
    home = tmp_path / "doomed_prefect"
    home.mkdir()
    doomed = start_prefect_server(home)  # the session's server must survive this test
    store, summary_path = tmp_path / "store", tmp_path / "summary.json"
    command = preprocess_command(root, pairs, store, "--workers", "1", "--summary-json", str(summary_path))
    with open(tmp_path / "output.log", "w") as output:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=cli_env(doomed.api_url, home),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_a_scene_in_flight(store, process)
        os.killpg(doomed.process.pid, signal.SIGKILL)
        doomed.process.wait(timeout=30)
        # Before the watch, this took 7 minutes; now the scenes left after the kill bound it.
        rc = process.wait(timeout=240)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    output = (tmp_path / "output.log").read_text()
    assert rc == 0, output[-4000:]
    assert "was lost during the run" in output and "Traceback" not in output, output[-4000:]
    summary = json.loads(summary_path.read_text())
    assert summary["done"] == scene_ids and not summary["failed"]

    # The store is the truth: every scene committed, readable and listed done; no failure recorded.
    reader = StoreReader(store)
    assert reader.scene_ids() == scene_ids
    reader.read_frame(scene_ids[-1], 0)
    scenes = read_table(store, "scenes")
    assert list(scenes["status"]) == ["done"] * len(scene_ids)
    layout = StoreLayout(store)
    assert not layout.failures_dir.is_dir() or not any(layout.failures_dir.iterdir())
    assert not layout.staging_dir.exists()

    # A re-run, with a server again, finds everything done.
    _, again = run_preprocess(cli_env(*prefect_server), root, pairs, store, tmp_path / "again.json")
    assert again["skipped"] == scene_ids and not again["done"] and not again["failed"]
