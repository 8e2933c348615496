"""A run killed mid-way loses nothing: no half scene is ever listed, and a re-run finishes only the
missing scenes."""

from __future__ import annotations

import os
import signal

import pytest
from _preprocess_support import (
    assert_store_consistent,
    cli_env,
    kill_a_worker_after_a_commit,
    make_root,
    run_preprocess,
    start_preprocess,
    wait_for_commits,
)

from datasets.store.schema import SHARD_FRAMES, StoreLayout

pytestmark = pytest.mark.slow

# Scenes of one task each, and scenes of two frame chunks each.
TASK_LAYOUTS = pytest.mark.parametrize(
    "frames, tasks",
    [(3, ()), (SHARD_FRAMES + 4, ("--frames-per-task", str(SHARD_FRAMES)))],
    ids=["one-task-per-scene", "frame-chunks"],
)


@TASK_LAYOUTS
def test_killing_the_whole_run_then_rerunning(tmp_path, prefect_server, frames, tasks):
    root, pairs = make_root(tmp_path / "data", num_scenes=4, seed=5, frames=frames)
    scene_ids = sorted(p.name for p in (root / "data").iterdir())
    env = cli_env(*prefect_server)
    store = tmp_path / "store"
    process = start_preprocess(env, root, pairs, store, "--workers", "1", *tasks)
    try:
        wait_for_commits(store, 1, process)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    committed = assert_store_consistent(store)
    assert 1 <= len(committed) < len(scene_ids), "the kill must land mid-run"

    _, summary = run_preprocess(env, root, pairs, store, tmp_path / "s.json", "--workers", "2", *tasks)
    assert summary["skipped"] == committed
    assert summary["done"] == sorted(set(scene_ids) - set(committed))
    assert assert_store_consistent(store) == scene_ids
    assert not StoreLayout(store).staging_dir.exists(), "the re-run sweeps killed writers' staging dirs"


@TASK_LAYOUTS
def test_killing_a_worker_loses_nothing(tmp_path, prefect_server, frames, tasks):
    root, pairs = make_root(tmp_path / "data", num_scenes=4, seed=6, frames=frames)
    scene_ids = sorted(p.name for p in (root / "data").iterdir())
    env = cli_env(*prefect_server)
    store = tmp_path / "store"
    process = start_preprocess(env, root, pairs, store, "--workers", "2", *tasks)
    kill_a_worker_after_a_commit(process, store)
    first = assert_store_consistent(store)
    # The nanny restarts the worker and Dask reruns the killed worker's tasks elsewhere (they are placed with a
    # loose restriction); the run ends, and whatever did not finish is redone now.
    _, summary = run_preprocess(env, root, pairs, store, tmp_path / "s.json", "--workers", "2", *tasks)
    assert summary["skipped"] == first
    assert sorted(summary["done"] + summary["skipped"]) == scene_ids
    assert assert_store_consistent(store) == scene_ids
