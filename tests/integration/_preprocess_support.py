"""Helpers shared by the preprocess integration tests: tiny synthetic roots, a Prefect server, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from datasets.store.backend import backend_for
from datasets.store.reader import StoreReader
from datasets.store.schema import table_key
from datasets.store.tables import read_table

REPO = Path(__file__).resolve().parents[2]
# Small frames keep a scene to a few seconds on 2 CPU cores; the flow is what these tests check.
TARGET_RESOLUTION = 128


def make_root(out: Path, num_scenes: int, seed: int = 0, frames: int = 3) -> tuple[Path, Path]:
    """A synthetic ScanNet++ root and its pairs folder under `out`."""
    generate = pytest.importorskip(
        "datasets.synthetic.generate", reason="the synthetic generator is not there yet"
    )
    root, pairs = out / "root", out / "pairs"
    generate.generate_dataset(
        out_root=root,
        num_scenes=num_scenes,
        seed=seed,
        frames=frames,
        image_size=(176, 132),
        iphone=False,
        pairs_dir=pairs,
    )
    return root, pairs


def preprocess_in_process(root: Path, store: Path, target_resolution: int, pairs: Path | None = None) -> Path:
    """Every scene of `root` into `store` with the library functions the preprocess flow runs (the scene job
    per scene, then the store's finalisation), without Prefect; pairs from `pairs` (default ROOT/pairs);
    returns the store."""
    from datasets.preprocess.result import PreprocessConfig
    from datasets.preprocess.scene_job import plan_scenes, run_scene
    from datasets.scannetpp.reader import list_scenes
    from datasets.store.finalize import finalize_store
    from datasets.store.splits import scene_splits
    from datasets.store.writer import open_or_create_store

    open_or_create_store(store)
    config = PreprocessConfig(target_resolution=target_resolution)
    splits = scene_splits(root)
    pairs = pairs or root / "pairs"
    plan = plan_scenes(store, root, list_scenes(root, pairs), pairs, config)
    for scene in plan.to_run:
        split = splits.get(scene.scene_id, "")
        run_scene(root, store, scene.scene_id, config, pairs, split, scene.source_hash)
    finalize_store(store, config.cls_sep, plan.current_version())
    return store


def start_prefect_server(home: Path, host: str = "127.0.0.1"):
    """A Prefect server on a free port of `host` using `home` as PREFECT_HOME; the caller stops it."""
    old_home = os.environ.get("PREFECT_HOME")
    os.environ["PREFECT_HOME"] = str(home)
    try:
        from flows.prefect_env import LocalServer, free_port

        return LocalServer(free_port(), log_path=home / "server.log", host=host).start()
    finally:
        if old_home is None:
            os.environ.pop("PREFECT_HOME")
        else:
            os.environ["PREFECT_HOME"] = old_home


def cli_env(prefect_api: str, prefect_home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "PREFECT_API_URL": prefect_api,
            "PREFECT_HOME": str(prefect_home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PYOPENGL_PLATFORM": "egl",
        }
    )
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "flows.cli.main", *args]


def preprocess_command(root: Path, pairs: Path, store: Path, *extra: str) -> list[str]:
    """`panst3r preprocess` of `root` into `store` at the tests' small resolution."""
    return cli_command(
        "preprocess",
        "--root",
        str(root),
        "--pairs",
        str(pairs),
        "--store",
        str(store),
        "--target-resolution",
        str(TARGET_RESOLUTION),
        *extra,
    )


def run_preprocess(
    env: dict[str, str],
    root: Path,
    pairs: Path,
    store: Path,
    summary: Path,
    *extra: str,
    timeout: float = 600,
) -> tuple[subprocess.CompletedProcess, dict]:
    command = preprocess_command(root, pairs, store, "--summary-json", str(summary), *extra)
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if not summary.is_file():
        raise AssertionError(
            f"preprocess wrote no summary (rc {result.returncode}):\n{result.stderr[-4000:]}"
        )
    return result, json.loads(summary.read_text())


def start_preprocess(env: dict[str, str], root: Path, pairs: Path, store, *extra: str) -> subprocess.Popen:
    """`panst3r preprocess` in the background, in its own process group (for killing it whole)."""
    return subprocess.Popen(
        preprocess_command(root, pairs, store, *extra),
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def dask_worker_pids(parent_pid: int) -> list[int]:
    """Dask worker processes: grandchildren (nanny -> worker) of the CLI process, found through /proc."""
    children: dict[int, list[int]] = {}
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


def kill_a_worker_after_a_commit(process: subprocess.Popen, store) -> None:
    """Once `store` has a committed scene, SIGKILL one Dask worker of the running `preprocess` and wait for
    the run to end (its whole process group is killed if the test fails first)."""
    try:
        wait_for_commits(store, 1, process)
        workers = dask_worker_pids(process.pid)
        assert workers, "no Dask worker process found"
        os.kill(workers[0], signal.SIGKILL)
        process.wait(timeout=600)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def wait_for_commits(store, count, process, timeout=300):
    """Until `store` (a directory or an object-store URL) has `count` committed scenes; fails the test if
    `process` ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(_committed(store)) >= count:
            return
        if process.poll() is not None:
            pytest.fail(f"the run ended (rc {process.returncode}) before {count} scenes were committed")
        time.sleep(0.05)
    pytest.fail(f"fewer than {count} scenes committed within {timeout} s")


def _committed(store) -> list[str]:
    try:
        return backend_for(store).committed_scene_ids()  # a new backend: an object store's newest snapshot
    except FileNotFoundError:
        return []  # the run has not created the store yet


def assert_store_consistent(store) -> list[str]:
    """Every committed scene reads completely and the tables list no other; returns the committed ids."""
    reader = StoreReader(store)
    committed = reader.scene_ids()
    for scene_id in committed:  # every listed scene is complete and readable
        for index in range(reader.num_frames(scene_id)):
            reader.read_frame(scene_id, index)
    if backend_for(store).read_file(table_key("scenes")) is not None:
        listed = set(read_table(store, "scenes").query("status != 'failed'")["scene_id"])
        assert listed <= set(committed), "a table lists a scene that is not committed"
    return committed
