"""Prefect flow `preprocess`: ScanNet++ scenes -> Zarr store + Parquet tables, tasks on Dask.

The flow process decides what to do (skip scenes whose committed version has the same source hash,
config hash and code version; flows.plan_feed, in a thread), creates the store, runs one task per remaining
scene (or, for a long scene in a directory store, one plain Dask task per frame chunk and a commit task once
they all succeeded), placing each task on a worker itself (flows.chunk_dispatch: a scene's chunks stay on
the worker that has its mesh, no worker idles while a task waits), records failures and rebuilds the tables
as tasks finish (flows.preprocess_collector; the tasks: flows.preprocess_tasks). Workers only read inputs and
commit their own scene. Import this module only after `flows.prefect_env.configure_prefect_env` (Prefect reads
settings at import).
"""

from __future__ import annotations

import os
import queue
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect_dask import DaskTaskRunner

from datasets.preprocess.error_kinds import failure_reason
from datasets.preprocess.result import DEFAULT_FRAMES_PER_TASK, PreprocessConfig
from datasets.preprocess.scene_job import ScenePlanner
from datasets.scannetpp.reader import list_scenes
from datasets.store.backend import backend_for
from datasets.store.failures import utc_now
from datasets.store.location import StoreLocation
from datasets.store.splits import scene_splits
from datasets.store.staleness import CurrentVersion
from datasets.store.writer import open_or_create_store, sweep_staging
from flows.dask_cluster import ClusterChoice, choose_cluster
from flows.plan_feed import start_planning
from flows.preprocess_collector import Collector, SceneJobs, bookkeeping
from flows.preprocess_progress import emit
from flows.preprocess_runner import preprocess_task_runner

# Served deployments load this module in a fresh process per flow run, so their worker count comes from
# the environment (`panst3r serve --workers N` sets it); the CLI passes its own runner instead.
WORKERS_ENV = "PANST3R_PREPROCESS_WORKERS"


@flow(
    name="preprocess",
    task_runner=preprocess_task_runner(choose_cluster(workers=int(os.environ.get(WORKERS_ENV, "2")))),
)
def preprocess(
    root: str,
    store: str,
    pairs: str | None = None,
    scenes: list[str] | None = None,
    target_resolution: int = 920,
    unknown_labels: str = "void",
    export_crowd: bool = False,
    redo: list[str] | None = None,
    frames_per_task: int = DEFAULT_FRAMES_PER_TASK,
) -> dict[str, Any]:
    """Preprocess every scene of `root` (or `scenes`) into `store`, redoing `redo` even when up to date
    (e.g. after `panst3r status --verify` found a corrupt chunk); a scene of more than `frames_per_task`
    frames runs as frame chunks (plain Dask tasks) and one commit task (0: one task per scene). Returns
    the run summary `{done, skipped, failed: {scene: reason}, unknown_labels: {scene: what was left void},
    frames, seconds, store}`. `unknown_labels`: "void" (official) or "error", see PreprocessConfig."""
    logger = get_run_logger()
    started = time.perf_counter()
    root_path, store_path = Path(root).resolve(), StoreLocation.parse(store).resolved()
    pairs_path = Path(pairs).resolve() if pairs else None
    if store_path.snapshot:
        raise ValueError(f"--store {store_path} is pinned to a snapshot; preprocess into {store_path.text}")
    if not root_path.is_dir():
        raise FileNotFoundError(
            f"--root {root_path} is not a directory; pass the ScanNet++ root (with data/)"
        )
    if frames_per_task < 0:
        raise ValueError(f"--frames-per-task must be 0 (one task per scene) or more, got {frames_per_task}")
    if pairs_path is not None and not pairs_path.is_dir():
        raise FileNotFoundError(
            f"--pairs {pairs_path} is not a directory; pass the folder of <scene>/selected_pairs.npz"
        )
    config = PreprocessConfig(
        target_resolution=target_resolution, unknown_labels=unknown_labels, export_crowd=export_crowd
    )

    available = list_scenes(root_path, pairs_path)
    for flag, names in (("--scenes", scenes), ("--redo", redo)):
        _check_scene_names(flag, names or [], available, root_path, pairs_path)
    # Scenes to redo are part of the selection even when --scenes lists others.
    wanted = set(scenes) | set(redo or []) if scenes else set(available)
    selected = [s for s in available if s in wanted]

    with backend_for(store_path).lock():
        return _preprocess_selected(
            logger, started, root_path, store_path, pairs_path, selected, config, set(redo or []), frames_per_task
        )  # fmt: skip


def _check_scene_names(
    flag: str, names: list[str], available: list[str], root_path: Path, pairs_path: Path | None
) -> None:
    unknown = sorted(set(names) - set(available))
    if unknown:
        raise ValueError(
            f"{flag} names {', '.join(unknown)}, not found under {root_path / 'data'}"
            + (f" with pairs in {pairs_path}" if pairs_path else "")
            + f"; available: {', '.join(available[:10])}{' ...' if len(available) > 10 else ''}"
        )


def _preprocess_selected(
    logger,
    started: float,
    root_path: Path,
    store_path: StoreLocation,
    pairs_path: Path | None,
    selected: list[str],
    config: PreprocessConfig,
    redo: set[str],
    frames_per_task: int,
) -> dict[str, Any]:
    """The flow's work once the arguments are checked; runs under the store lock."""
    started_at = utc_now()
    open_or_create_store(store_path)
    sweep_staging(store_path)  # leftovers of killed runs; nothing is writing yet
    backend = backend_for(store_path)
    jobs = SceneJobs(str(root_path), str(store_path), str(pairs_path) if pairs_path else None, config)
    planner = ScenePlanner(store_path, root_path, pairs_path, config)
    events: queue.SimpleQueue = queue.SimpleQueue()
    # Until planning ends, committed scenes are compared with the source hashes of the scenes planned so far.
    planned_so_far = CurrentVersion(planner.config_hash, planner.code_version, {})
    collector = Collector(
        logger, backend, started_at, jobs, scene_splits(root_path), events, store_path, planned_so_far
    )
    start_planning(planner, selected, redo, jobs.stager(frames_per_task), events)
    outcome, store_plan = collector.run()
    current = store_plan.current_version()
    # Every task has ended, so nothing writes into staging any more: a write that failed half-way (a full
    # disk) may have left files that its own clean-up raced with.
    sweep_staging(store_path)
    from datasets.store.finalize import finalize_store  # the tables' modules: see Collector.tables

    tables = None
    with bookkeeping(logger, "write the tables"):
        tables = finalize_store(store_path, config.cls_sep, current, collector.tables())
    backend.refresh()
    committed = set(backend.committed_scene_ids()) - set(outcome.failed)
    summary = {
        "done": sorted(outcome.done),
        "skipped": sorted(store_plan.skipped),
        "failed": dict(sorted(outcome.failed.items())),
        "unknown_labels": dict(sorted(outcome.unknown_labels.items())),
        "frames": outcome.frames,
        "seconds": time.perf_counter() - started,
        "store": str(store_path),
        "commit_seconds": outcome.commit_seconds,
        "loop_seconds": collector.clock.summary(),
        "committed_scenes": len(committed)
        if tables is None
        else int((tables["scenes"]["status"] != "failed").sum()),
    }
    summary["version"] = _version_of(logger, store_path)
    _log_summary(logger, summary)
    emit({"event": "finished", "summary": summary})
    return summary


def _version_of(logger, store_path: StoreLocation) -> str | None:
    """The store's version after the run (snapshot id or content hash), None when it cannot be read."""
    from datasets.store.queries import store_version  # the tables' modules: see _preprocess_selected

    try:
        version = store_version(store_path)
    except (OSError, ValueError) as exc:
        logger.warning("could not read the store's version: %s", failure_reason(exc))
        return None
    logger.info("store %s is now at %s %s", store_path, version.kind.replace("_", " "), version.id)
    return version.id


def _log_summary(logger, summary: dict[str, Any]) -> None:
    logger.info(
        "preprocess finished in %.1f s: %d done (%d frames), %d skipped, %d failed",
        summary["seconds"],
        len(summary["done"]),
        summary["frames"],
        len(summary["skipped"]),
        len(summary["failed"]),
    )
    for scene_id, reason in summary["failed"].items():
        logger.warning("failed %s: %s", scene_id, reason)


def run_preprocess(
    root: str,
    store: str,
    pairs: str | None = None,
    scenes: list[str] | None = None,
    target_resolution: int = 920,
    workers: int = 2,
    dask_address: str | None = None,
    unknown_labels: str = "void",
    export_crowd: bool = False,
    redo: list[str] | None = None,
    cluster: ClusterChoice | None = None,
    frames_per_task: int = DEFAULT_FRAMES_PER_TASK,
    task_runner: DaskTaskRunner | None = None,
) -> dict[str, Any]:
    """Run the flow in this process on `task_runner` (e.g. flows.early_cluster's), else on `cluster`
    (default: from `workers` / `dask_address`)."""
    runner = task_runner or preprocess_task_runner(cluster or choose_cluster(None, workers, dask_address))
    return preprocess.with_options(task_runner=runner)(
        root=root,
        store=store,
        pairs=pairs,
        scenes=scenes,
        target_resolution=target_resolution,
        unknown_labels=unknown_labels,
        export_crowd=export_crowd,
        redo=redo,
        frames_per_task=frames_per_task,
    )
