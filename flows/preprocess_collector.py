"""The preprocess flow's loop (Collector): takes planned scenes from the planning thread (flows.plan_feed),
places their tasks on the workers (flows.chunk_dispatch), records each scene as its last task ends and keeps
the tables current; and the bookkeeping that must never end a run."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import dask

from datasets.preprocess.chunk_job import FrameChunk, StagedScene, run_frame_chunk, stage_chunked_scene
from datasets.preprocess.error_kinds import failure_reason, is_permanent
from datasets.preprocess.result import PreprocessConfig
from datasets.preprocess.scene_job import ScenePlan, StorePlan
from datasets.preprocess.unknown_labels import UnknownLabelReport
from datasets.store.backend import StoreBackend
from datasets.store.failures import clear_failure, write_failure
from datasets.store.location import StoreLocation
from datasets.store.reader import read_scene_attrs
from datasets.store.staleness import CurrentVersion, committed_by_this_run
from flows.chunk_dispatch import ChunkDispatcher, Job
from flows.loop_clock import LoopClock
from flows.plain_dask_tasks import flow_run_client, plain_outcome, submit_plain
from flows.plan_feed import Planned, PlanningDone, PlanningFailed
from flows.preprocess_progress import emit
from flows.preprocess_tasks import (
    COMMIT_PRIORITY,
    RETRY_DELAY_SECONDS,
    TASK_RETRIES,
    commit_scene_task,
    preprocess_scene_task,
)
from flows.task_futures import task_outcome as _collect

if TYPE_CHECKING:
    from datasets.store.tables import TableBuilder

TABLE_REFRESH_SECONDS = 2.0


@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    unknown_labels: dict[str, str] = field(default_factory=dict)
    """Scene -> the labels missing from map_benchmark.csv that it leaves void, and what they cover."""
    frames: int = 0
    commit_seconds: dict[str, float] = field(default_factory=dict)
    """Per scene done: the seconds its commit took (a rename, or a transaction on an object store)."""


@dataclass
class SceneWork:
    """One scene's tasks in flight: a whole-scene task, or chunk tasks then a commit task."""

    plan: ScenePlan
    split: str
    staged: StagedScene | None = None
    chunk_results: dict[int, dict] = field(default_factory=dict)
    failed: bool = False


@dataclass(frozen=True)
class SceneJobs:
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

    def scene_jobs(self, work: SceneWork) -> list[Job]:
        plan, config = work.plan, asdict(self.config)
        if work.staged is None:
            args = (self.root, self.store, plan.scene_id, config, self.pairs, work.split, plan.source_hash)
            return [Job(plan.scene_id, prefect_submit(preprocess_scene_task, args), tag=(work, "scene"))]
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

    def commit_job(self, work: SceneWork) -> Job:
        results = [work.chunk_results[i] for i in range(len(work.staged.chunks))]
        args = (
            self.root, self.store, work.plan.scene_id, asdict(self.config), self.pairs, work.split,
            work.plan.source_hash, work.staged.staging, results,
        )  # fmt: skip
        submit = prefect_submit(commit_scene_task, args, priority=COMMIT_PRIORITY)
        return Job(work.plan.scene_id, submit, commit=True, tag=(work, "commit"))


def prefect_submit(prefect_task, args: tuple, **annotations) -> Callable[[str], Any]:
    """Submits `prefect_task(*args)` to a given worker (or elsewhere, should it leave the cluster)."""

    def submit(worker: str):
        with dask.annotate(workers=[worker], allow_other_workers=True, **annotations):
            return prefect_task.submit(*args)

    return submit


# How often the loop looks again for workers when jobs wait and no task is running (workers still starting).
IDLE_POLL_SECONDS = 0.5


@dataclass
class Collector:
    """The flow's loop: takes planned scenes from the planning thread, places their jobs on the workers
    (flows.chunk_dispatch), records each scene as its last task ends (queueing a chunked scene's commit once
    all its chunks succeeded); the tables follow along every few seconds."""

    logger: Any
    backend: StoreBackend
    started_at: str
    jobs: SceneJobs
    splits: dict[str, str]
    events: queue.SimpleQueue
    store_path: StoreLocation
    current: CurrentVersion | None = None
    """What committed scenes are compared with (staleness, a commit made by this run)."""
    outcome: Outcome = field(default_factory=Outcome)
    clock: LoopClock = field(default_factory=LoopClock)
    _builder: TableBuilder | None = None

    def run(self) -> tuple[Outcome, StorePlan]:
        dispatcher = ChunkDispatcher(workers=flow_run_client().nthreads)
        in_flight: dict = {}
        store_plan, last_tables = None, time.monotonic()
        while store_plan is None or in_flight or dispatcher.waiting:
            idle = dispatcher.waiting and not in_flight  # e.g. workers still starting: look again soon
            starved = store_plan is None and not dispatcher.waiting and dispatcher.free_slots
            with self.clock.timing("waiting_for_planning" if starved else "waiting_for_tasks"):
                try:
                    event = self.events.get(timeout=IDLE_POLL_SECONDS if idle else None)
                except queue.Empty:
                    event = None
            with self.clock.timing("handling"):
                store_plan = self._handle(event, dispatcher, in_flight) or store_plan
            with self.clock.timing("placing"):
                for future, job in dispatcher.place(more_coming=store_plan is None).items():
                    in_flight[future] = job
                    future.add_done_callback(self.events.put)
            if time.monotonic() - last_tables > TABLE_REFRESH_SECONDS:
                with self.clock.timing("tables"), bookkeeping(self.logger, "write the tables"):
                    self.tables().write(self.current)
                last_tables = time.monotonic()
        self.logger.info(self.clock.describe())
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
            work = SceneWork(event.plan, self.splits.get(event.plan.scene_id, ""), event.staged)
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
        log_plan(self.logger, store_plan, self.store_path)
        emit({"event": "planned", "total": len(store_plan.to_run), "skipped": len(store_plan.skipped)})
        self.current = store_plan.current_version()

    def _ended(self, work: SceneWork, step, future, dispatcher: ChunkDispatcher) -> list[Job]:
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

    def _chunk_outcome(self, work: SceneWork, index: int, future) -> tuple[dict | None, BaseException | None]:
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
        with bookkeeping(logger, f"clear the failure record of {scene_id}"):
            clear_failure(self.backend, scene_id)
        outcome.done.append(scene_id)
        outcome.frames += int(result["frames"])
        if "commit_seconds" in result:
            outcome.commit_seconds[scene_id] = float(result["commit_seconds"])
        logger.info("scene %s done: %d frames, %.1f s", scene_id, result["frames"], result["seconds"])
        warn_unknown_labels(logger, outcome, scene_id, result.get("unknown_labels"))
        emit({"event": "scene", "scene_id": scene_id, "status": "done", "frames": result["frames"]})

    def _scene_failed(self, scene_id: str, exc: BaseException) -> None:
        reason = failure_reason(exc)
        attempts = 1 if is_permanent(exc) else TASK_RETRIES + 1
        with bookkeeping(self.logger, f"record the failure of {scene_id}"):
            write_failure(self.backend, scene_id, type(exc).__name__, reason, attempt=attempts)
        self.outcome.failed[scene_id] = reason
        self.logger.warning("scene %s failed: %s", scene_id, reason)
        emit({"event": "scene", "scene_id": scene_id, "status": "failed", "reason": reason})


def warn_unknown_labels(logger, outcome: Outcome, scene_id: str, report_attrs: dict | None) -> None:
    """The one warning of a scene whose labels map_benchmark.csv does not list (they were left void)."""
    report = UnknownLabelReport.from_attrs(report_attrs)
    if report.labels:
        logger.warning(report.warning(scene_id))
        outcome.unknown_labels[scene_id] = report.describe()


@contextmanager
def bookkeeping(logger, what: str) -> Iterator[None]:
    """Store bookkeeping (failure records, tables, caches) that a full or read-only disk refuses must not
    end the run: the committed scenes are the truth, and the next run rebuilds all of it."""
    try:
        yield
    except OSError as exc:
        logger.warning("could not %s: %s (the next run rebuilds it)", what, failure_reason(exc))


def log_plan(logger, store_plan: StorePlan, store_path: StoreLocation) -> None:
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
