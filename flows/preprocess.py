"""Prefect flow `preprocess`: ScanNet++ scenes -> Zarr store + Parquet tables, tasks on Dask.

The flow process decides what to do (skip scenes whose committed version has the same source hash,
config hash and code version; flows.plan_feed, in a thread), creates the store, runs one task per remaining
scene (or, for a long scene in a directory store, one plain Dask task per frame chunk and a commit task once
they all succeeded), placing each task on a worker itself (flows.chunk_dispatch: a scene's chunks stay on
the worker that has its mesh, no worker idles while a task waits), records failures and rebuilds the tables
as tasks finish. Workers only read inputs and commit their own scene. Import this module only after `flows.prefect_env.configure_prefect_env`
(Prefect reads settings at import).
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect_dask import DaskTaskRunner

from datasets.preprocess.chunk_job import (
    FrameChunk,
    StagedScene,
    commit_chunked_scene,
    run_frame_chunk,
    stage_chunked_scene,
)
from datasets.preprocess.error_kinds import failure_reason, is_permanent
from datasets.preprocess.result import DEFAULT_FRAMES_PER_TASK, PreprocessConfig
from datasets.preprocess.scene_job import ScenePlan, ScenePlanner, StorePlan, run_scene
from datasets.preprocess.unknown_labels import UnknownLabelReport
from datasets.scannetpp.reader import list_scenes
from datasets.store.backend import StoreBackend, backend_for
from datasets.store.failures import clear_failure, utc_now, write_failure
from datasets.store.location import StoreLocation
from datasets.store.reader import read_scene_attrs
from datasets.store.splits import scene_splits
from datasets.store.staleness import CurrentVersion, committed_by_this_run
from datasets.store.writer import open_or_create_store, sweep_staging
from flows.chunk_dispatch import ChunkDispatcher, Job
from flows.dask_cluster import ClusterChoice, choose_cluster
from flows.plain_dask_tasks import flow_run_client, plain_outcome, submit_plain
from flows.plan_feed import Planned, PlanningDone, PlanningFailed, start_planning
from flows.preprocess_runner import preprocess_task_runner
from flows.task_futures import task_outcome as _collect

if TYPE_CHECKING:
    from datasets.store.tables import TableBuilder

TASK_RETRIES = 2
RETRY_DELAY_SECONDS = 2
TABLE_REFRESH_SECONDS = 2.0


# Progress listeners (the CLI's progress bar); called in the flow process only.
_listeners: list[Callable[[dict[str, Any]], None]] = []


@contextmanager
def progress_listener(callback: Callable[[dict[str, Any]], None]) -> Iterator[None]:
    """Receive `{"event": "planned", "total", "skipped"}` then `{"event": "scene", "scene_id", "status", ...}`."""
    _listeners.append(callback)
    try:
        yield
    finally:
        _listeners.remove(callback)


def _emit(event: dict[str, Any]) -> None:
    for callback in list(_listeners):
        callback(event)


def _retry_transient(task, task_run, state) -> bool:
    """Retry unless the failure is permanent: bad scene input, no space, no permission (error_kinds)."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - an unreadable result is itself a transient problem
        return True
    return not (isinstance(exc, BaseException) and is_permanent(exc))


_TASK_OPTIONS = {
    "retries": TASK_RETRIES,
    "retry_delay_seconds": RETRY_DELAY_SECONDS,
    "retry_condition_fn": _retry_transient,
    "cache_policy": NO_CACHE,  # skipping is decided from the store's content, see plan_scene
    "persist_result": False,
}


@task(name="preprocess-scene", task_run_name="scene-{scene_id}", **_TASK_OPTIONS)
def preprocess_scene_task(
    root: str, store: str, scene_id: str, config: dict, pairs: str | None, split: str, source_hash: str | None
) -> dict:
    return run_scene(root, store, scene_id, PreprocessConfig(**config), pairs, split, source_hash)


# A scene split into frame chunks (datasets.preprocess.chunk_job): its chunks run as plain Dask tasks
# (flows.plain_dask_tasks: Prefect's per-task cost is paid per scene, not per chunk), then one commit task,
# placed and run ahead of any chunk, so that finished scenes become visible while the run goes on.
COMMIT_PRIORITY = 1


@task(name="commit-scene", task_run_name="commit-{scene_id}", **_TASK_OPTIONS)
def commit_scene_task(
    root: str,
    store: str,
    scene_id: str,
    config: dict,
    pairs: str | None,
    split: str,
    source_hash: str,
    staging: str,
    chunk_results: list[dict],
) -> dict:
    return commit_chunked_scene(
        root, store, scene_id, PreprocessConfig(**config), pairs, split, source_hash, staging, chunk_results
    )


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
    jobs = _SceneJobs(str(root_path), str(store_path), str(pairs_path) if pairs_path else None, config)
    planner = ScenePlanner(store_path, root_path, pairs_path, config)
    events: queue.SimpleQueue = queue.SimpleQueue()
    # Until planning ends, committed scenes are compared with the source hashes of the scenes planned so far.
    planned_so_far = CurrentVersion(planner.config_hash, planner.code_version, {})
    collector = _Collector(
        logger, backend, started_at, jobs, scene_splits(root_path), events, store_path, planned_so_far
    )
    start_planning(planner, selected, redo, jobs.stager(frames_per_task), events)
    outcome, store_plan = collector.run()
    current = store_plan.current_version()
    # Every task has ended, so nothing writes into staging any more: a write that failed half-way (a full
    # disk) may have left files that its own clean-up raced with.
    sweep_staging(store_path)
    from datasets.store.finalize import finalize_store  # the tables' modules: see _Collector.tables

    tables = None
    with _bookkeeping(logger, "write the tables"):
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
        "committed_scenes": len(committed)
        if tables is None
        else int((tables["scenes"]["status"] != "failed").sum()),
    }
    summary["version"] = _version_of(logger, store_path)
    _log_summary(logger, summary)
    _emit({"event": "finished", "summary": summary})
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


def _log_plan(logger, store_plan: StorePlan, store_path: StoreLocation) -> None:
    logger.info(
        "input digests: %d files read, %d unchanged since the last run",
        store_plan.files_read,
        store_plan.files_unchanged,
    )
    logger.info(
        "%d scenes: %d to process, %d up to date (skipped); store %s",
        len(store_plan.scenes),
        len(store_plan.to_run),
        len(store_plan.skipped),
        store_path,
    )
    for plan in store_plan.to_run:
        logger.info("scene %s: %s", plan.scene_id, plan.why)


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


@dataclass
class _Outcome:
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    unknown_labels: dict[str, str] = field(default_factory=dict)
    """Scene -> the labels missing from map_benchmark.csv that it leaves void, and what they cover."""
    frames: int = 0
    commit_seconds: dict[str, float] = field(default_factory=dict)
    """Per scene done: the seconds its commit took (a rename, or a transaction on an object store)."""


@dataclass
class _SceneWork:
    """One scene's tasks in flight: a whole-scene task, or chunk tasks then a commit task."""

    plan: ScenePlan
    split: str
    staged: StagedScene | None = None
    chunk_results: dict[int, dict] = field(default_factory=dict)
    failed: bool = False


@dataclass(frozen=True)
class _SceneJobs:
    """A scene's tasks as jobs for the dispatcher (flows.chunk_dispatch); each job's tag is (its scene's work,
    its step: "scene", "commit" or a chunk index). A chunk runs as a plain Dask task, the others as Prefect
    tasks; each is submitted to the worker the dispatcher chose."""

    root: str
    store: str
    pairs: str | None
    config: PreprocessConfig

    def stager(self, frames_per_task: int) -> Callable[[ScenePlan], StagedScene | None]:
        """Stages a planned scene for frame chunks (None: it runs as one task); called in the planning thread."""

        def stage(plan: ScenePlan) -> StagedScene | None:
            return stage_chunked_scene(
                self.store, self.root, plan.scene_id, self.config, self.pairs, frames_per_task, plan.record
            )

        return stage

    def scene_jobs(self, work: _SceneWork) -> list[Job]:
        plan, config = work.plan, asdict(self.config)
        if work.staged is None:
            args = (self.root, self.store, plan.scene_id, config, self.pairs, work.split, plan.source_hash)
            return [Job(plan.scene_id, _prefect_submit(preprocess_scene_task, args), tag=(work, "scene"))]
        client = flow_run_client()

        def chunk_submit(chunk: FrameChunk) -> Callable[[str], Any]:
            return lambda worker: submit_plain(
                client, f"chunk-{plan.scene_id}-{chunk.camera}-{chunk.start}", run_frame_chunk,
                self.root, self.store, plan.scene_id, self.config, self.pairs, plan.source_hash, work.staged.staging,
                chunk, retries=TASK_RETRIES, retry_delay_seconds=RETRY_DELAY_SECONDS, is_permanent=is_permanent,
                worker=worker,
            )  # fmt: skip

        return [
            Job(plan.scene_id, chunk_submit(chunk), tag=(work, index))
            for index, chunk in enumerate(work.staged.chunks)
        ]

    def commit_job(self, work: _SceneWork) -> Job:
        results = [work.chunk_results[i] for i in range(len(work.staged.chunks))]
        args = (
            self.root, self.store, work.plan.scene_id, asdict(self.config), self.pairs, work.split,
            work.plan.source_hash, work.staged.staging, results,
        )  # fmt: skip
        submit = _prefect_submit(commit_scene_task, args, priority=COMMIT_PRIORITY)
        return Job(work.plan.scene_id, submit, commit=True, tag=(work, "commit"))


def _prefect_submit(prefect_task, args: tuple, **annotations) -> Callable[[str], Any]:
    """Submits `prefect_task(*args)` to a given worker (or elsewhere, should it leave the cluster)."""

    def submit(worker: str):
        with dask.annotate(workers=[worker], allow_other_workers=True, **annotations):
            return prefect_task.submit(*args)

    return submit


# How often the loop looks again for workers when jobs wait and no task is running (workers still starting).
IDLE_POLL_SECONDS = 0.5


@dataclass
class _Collector:
    """The flow's loop: takes planned scenes from the planning thread, places their jobs on the workers
    (flows.chunk_dispatch), records each scene as its last task ends (queueing a chunked scene's commit once
    all its chunks succeeded); the tables follow along every few seconds."""

    logger: Any
    backend: StoreBackend
    started_at: str
    jobs: _SceneJobs
    splits: dict[str, str]
    events: queue.SimpleQueue
    store_path: StoreLocation
    current: CurrentVersion | None = None
    """What committed scenes are compared with (staleness, a commit made by this run)."""
    outcome: _Outcome = field(default_factory=_Outcome)
    _builder: TableBuilder | None = None

    def run(self) -> tuple[_Outcome, StorePlan]:
        dispatcher = ChunkDispatcher(workers=flow_run_client().nthreads)
        in_flight: dict = {}
        store_plan, last_tables = None, time.monotonic()
        while store_plan is None or in_flight or dispatcher.waiting:
            idle = dispatcher.waiting and not in_flight  # e.g. workers still starting: look again soon
            try:
                event = self.events.get(timeout=IDLE_POLL_SECONDS if idle else None)
            except queue.Empty:
                event = None
            store_plan = self._handle(event, dispatcher, in_flight) or store_plan
            for future, job in dispatcher.place(more_coming=store_plan is None).items():
                in_flight[future] = job
                future.add_done_callback(self.events.put)
            if time.monotonic() - last_tables > TABLE_REFRESH_SECONDS:
                with _bookkeeping(self.logger, "write the tables"):
                    self.tables().write(self.current)
                last_tables = time.monotonic()
        return self.outcome, store_plan

    def _handle(self, event, dispatcher: ChunkDispatcher, in_flight: dict) -> StorePlan | None:
        """One event of the loop: a planned scene, the end of planning (its StorePlan returned), an ended task."""
        if isinstance(event, PlanningFailed):
            raise event.error
        if isinstance(event, PlanningDone):
            self._planning_done(event.store_plan)
            return event.store_plan
        if isinstance(event, Planned):
            if event.plan.source_hash is not None:
                self.current.source_hashes[event.plan.scene_id] = event.plan.source_hash
            work = _SceneWork(event.plan, self.splits.get(event.plan.scene_id, ""), event.staged)
            dispatcher.add(self.jobs.scene_jobs(work))
        elif event is not None:  # a task's future
            dispatcher.ended(event)
            work, step = in_flight.pop(event).tag
            dispatcher.add(self._ended(work, step, event, dispatcher))
        return None

    def tables(self) -> TableBuilder:
        """The run's table builder, made on first use: its modules (pandas) load only once tasks run, so that a
        run's start waits for none of it (served runs start their first scene in about 2 s)."""
        if self._builder is None:
            from datasets.store.tables import TableBuilder

            self._builder = TableBuilder(self.store_path)
        return self._builder

    def _planning_done(self, store_plan: StorePlan) -> None:
        _log_plan(self.logger, store_plan, self.store_path)
        _emit({"event": "planned", "total": len(store_plan.to_run), "skipped": len(store_plan.skipped)})
        self.current = store_plan.current_version()

    def _ended(self, work: _SceneWork, step, future, dispatcher: ChunkDispatcher) -> list[Job]:
        """Handle one ended task; the jobs it leads to (a commit), if any."""
        if step in ("scene", "commit"):
            self._scene_ended(work.plan, *_collect(future))
            return []
        result, exc = self._chunk_outcome(work, step, future)
        if work.failed:
            return []  # the scene failed already (another chunk); its staging group is swept at the end
        if exc is not None:
            work.failed = True
            dispatcher.drop(work.plan.scene_id)
            self._scene_failed(work.plan.scene_id, exc)
            return []
        work.chunk_results[step] = result
        if len(work.chunk_results) < len(work.staged.chunks):
            return []
        return [self.jobs.commit_job(work)]

    def _chunk_outcome(
        self, work: _SceneWork, index: int, future
    ) -> tuple[dict | None, BaseException | None]:
        result, exc, retried = plain_outcome(future)
        if retried:
            chunk = work.staged.chunks[index]
            self.logger.warning(
                "scene %s: %s frames %d-%d succeeded on attempt %d (before: %s)",
                work.plan.scene_id, chunk.camera, chunk.start, chunk.stop - 1, len(retried) + 1, "; ".join(retried),
            )  # fmt: skip
        return result, exc

    def _scene_ended(self, plan: ScenePlan, result: dict | None, exc: BaseException | None) -> None:
        if exc is not None and committed_by_this_run(
            self.backend, plan.scene_id, self.current, self.started_at
        ):
            # The scene reached the store; whatever failed after that (e.g. reporting to a Prefect server
            # that is gone) does not undo the commit, which is the truth about the scene.
            attrs = read_scene_attrs(self.backend, plan.scene_id)
            unknown = attrs.get("unknown_labels")
            result, exc = {"frames": attrs["num_frames"], "seconds": 0.0, "unknown_labels": unknown}, None
        if exc is None:
            self._scene_done(plan.scene_id, result)
        else:
            self._scene_failed(plan.scene_id, exc)

    def _scene_done(self, scene_id: str, result: dict) -> None:
        logger, outcome = self.logger, self.outcome
        with _bookkeeping(logger, f"clear the failure record of {scene_id}"):
            clear_failure(self.backend, scene_id)
        outcome.done.append(scene_id)
        outcome.frames += int(result["frames"])
        if "commit_seconds" in result:
            outcome.commit_seconds[scene_id] = float(result["commit_seconds"])
        logger.info("scene %s done: %d frames, %.1f s", scene_id, result["frames"], result["seconds"])
        _warn_unknown_labels(logger, outcome, scene_id, result.get("unknown_labels"))
        _emit({"event": "scene", "scene_id": scene_id, "status": "done", "frames": result["frames"]})

    def _scene_failed(self, scene_id: str, exc: BaseException) -> None:
        reason = failure_reason(exc)
        attempts = 1 if is_permanent(exc) else TASK_RETRIES + 1
        with _bookkeeping(self.logger, f"record the failure of {scene_id}"):
            write_failure(self.backend, scene_id, type(exc).__name__, reason, attempt=attempts)
        self.outcome.failed[scene_id] = reason
        self.logger.warning("scene %s failed: %s", scene_id, reason)
        _emit({"event": "scene", "scene_id": scene_id, "status": "failed", "reason": reason})


def _warn_unknown_labels(logger, outcome: _Outcome, scene_id: str, report_attrs: dict | None) -> None:
    """The one warning of a scene whose labels map_benchmark.csv does not list (they were left void)."""
    report = UnknownLabelReport.from_attrs(report_attrs)
    if report.labels:
        logger.warning(report.warning(scene_id))
        outcome.unknown_labels[scene_id] = report.describe()


@contextmanager
def _bookkeeping(logger, what: str) -> Iterator[None]:
    """Store bookkeeping (failure records, tables, caches) that a full or read-only disk refuses must not
    end the run: the committed scenes are the truth, and the next run rebuilds all of it."""
    try:
        yield
    except OSError as exc:
        logger.warning("could not %s: %s (the next run rebuilds it)", what, failure_reason(exc))


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
