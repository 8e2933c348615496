"""A run killed mid-way loses nothing: no half scene is ever listed, and a re-run finishes only the
missing scenes."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from _preprocess_support import REPO, cli_env, make_root, preprocess_command, run_preprocess

from datasets.store.reader import StoreReader
from datasets.store.schema import StoreLayout
from datasets.store.tables import read_table

pytestmark = pytest.mark.slow


def _start(env, root, pairs, store, workers):
    command = preprocess_command(root, pairs, store, "--workers", str(workers))
    return subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _wait_for_commits(store, count, process, timeout=300):
    layout = StoreLayout(store)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(layout.committed_scene_ids()) >= count:
            return
        if process.poll() is not None:
            pytest.fail(f"the run ended (rc {process.returncode}) before {count} scenes were committed")
        time.sleep(0.05)
    pytest.fail(f"fewer than {count} scenes committed within {timeout} s")


def _worker_pids(parent_pid):
    """Dask worker processes: grandchildren (nanny -> worker) of the CLI process, found through /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    descendants, frontier = [], [parent_pid]
    while frontier:
        pid = frontier.pop()
        for child in children.get(pid, []):
            descendants.append(child)
            frontier.append(child)
    return [pid for pid in descendants if "spawn" in open(f"/proc/{pid}/cmdline").read()]


def _assert_consistent(store):
    reader = StoreReader(store)
    committed = reader.scene_ids()
    for scene_id in committed:  # every listed scene is complete and readable
        for index in range(reader.num_frames(scene_id)):
            reader.read_frame(scene_id, index)
    layout = StoreLayout(store)
    if layout.table_path("scenes").is_file():
        listed = set(read_table(store, "scenes").query("status != 'failed'")["scene_id"])
        assert listed <= set(committed), "a table lists a scene that is not committed"
    return committed


def test_killing_the_whole_run_then_rerunning(tmp_path, prefect_server):
    root, pairs = make_root(tmp_path / "data", num_scenes=4, seed=5)
    scene_ids = sorted(p.name for p in (root / "data").iterdir())
    env = cli_env(*prefect_server)
    store = tmp_path / "store"
    process = _start(env, root, pairs, store, workers=1)
    try:
        _wait_for_commits(store, 1, process)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    committed = _assert_consistent(store)
    assert 1 <= len(committed) < len(scene_ids), "the kill must land mid-run"

    _, summary = run_preprocess(env, root, pairs, store, tmp_path / "s.json", "--workers", "2")
    assert summary["skipped"] == committed
    assert summary["done"] == sorted(set(scene_ids) - set(committed))
    assert _assert_consistent(store) == scene_ids
    assert not StoreLayout(store).staging_dir.exists(), "the re-run sweeps killed writers' staging dirs"


def test_killing_a_worker_loses_nothing(tmp_path, prefect_server):
    root, pairs = make_root(tmp_path / "data", num_scenes=4, seed=6)
    scene_ids = sorted(p.name for p in (root / "data").iterdir())
    env = cli_env(*prefect_server)
    store = tmp_path / "store"
    process = _start(env, root, pairs, store, workers=2)
    try:
        _wait_for_commits(store, 1, process)
        workers = _worker_pids(process.pid)
        assert workers, "no Dask worker process found"
        os.kill(workers[0], signal.SIGKILL)
        process.wait(timeout=600)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    first = _assert_consistent(store)
    # Dask restarts the worker and reschedules its scene; whatever did not finish is redone now.
    _, summary = run_preprocess(env, root, pairs, store, tmp_path / "s.json", "--workers", "2")
    assert summary["skipped"] == first
    assert sorted(summary["done"] + summary["skipped"]) == scene_ids
    assert _assert_consistent(store) == scene_ids
