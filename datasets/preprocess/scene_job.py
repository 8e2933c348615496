"""One scene end to end (read -> preprocess -> commit), and the skip/redo decision made before it.

These are the library functions behind the `preprocess` flow's tasks (and the GPU benchmark's process
pool); they run in any process and return small dicts, never arrays.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from datasets.preprocess.error_kinds import WRITE_ERRNOS, failure_reason, lasting_os_error
from datasets.preprocess.result import PreprocessConfig
from datasets.preprocess.worker_threads import limit_threads
from datasets.scannetpp.reader import read_scene
from datasets.scannetpp.record import SceneRecord
from datasets.store import hashing
from datasets.store.backend import StoreRef, backend_for
from datasets.store.failures import has_failure
from datasets.store.staleness import CurrentVersion
from datasets.store.writer import write_scene

log = logging.getLogger(__name__)


def prepare_worker() -> None:
    """What a worker process needs before preprocessing (idempotent, cheap: called by every task)."""
    # OpenGL picks its platform at import; workers of a user-provided Dask cluster may lack the variable.
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    limit_threads()


@dataclass(frozen=True)
class ScenePlan:
    scene_id: str
    run: bool
    """False when a committed scene has the same source hash, config hash and code version."""
    source_hash: str | None
    """None when the inputs could not be read (the task then fails with the reader's message)."""
    why: str
    record: SceneRecord | None = field(default=None, compare=False, repr=False)
    """A scene to run: its inputs as planning read them, for the flow's chunk staging (dropped after)."""


def plan_scene(
    store: StoreRef,
    root: Path,
    scene_id: str,
    pairs_dir: Path | None,
    config_hash: str,
    code_version: str,
    digests: hashing.DigestCache | None = None,
) -> ScenePlan:
    """Decide skip vs redo from content, never from a result cache (which ignores deleted outputs)."""
    backend = backend_for(store)
    try:
        record = read_scene(root, scene_id, pairs_dir)
        source = hashing.source_hash(record.source_files, root, digests)
    except Exception as exc:  # noqa: BLE001 - any per-scene error fails that scene alone: its task reads
        # the inputs again and fails with this reason, never the whole run at planning time
        return ScenePlan(scene_id, True, None, f"unreadable input: {failure_reason(exc)}")
    if not backend.has_scene(scene_id):
        return ScenePlan(scene_id, True, source, "not in the store", record)
    attrs = backend.scene_attrs(scene_id)
    changed = [
        name
        for name, now, then in (
            ("inputs", source, attrs.get("source_hash")),
            ("config", config_hash, attrs.get("config_hash")),
            ("code", code_version, attrs.get("code_version")),
        )
        if now != then
    ]
    if has_failure(backend, scene_id):
        changed.append("last attempt failed")
    if changed:
        return ScenePlan(scene_id, True, source, "changed: " + ", ".join(changed), record)
    return ScenePlan(scene_id, False, source, "up to date")


@dataclass(frozen=True)
class StorePlan:
    """The skip/redo decision for every selected scene of a run, and what it was decided against."""

    scenes: list[ScenePlan]
    config_hash: str
    code_version: str
    files_read: int
    """Input files hashed now (new or changed since the store's digest cache saw them)."""
    files_unchanged: int

    @property
    def to_run(self) -> list[ScenePlan]:
        return [plan for plan in self.scenes if plan.run]

    @property
    def skipped(self) -> list[str]:
        return [plan.scene_id for plan in self.scenes if not plan.run]

    def current_version(self) -> CurrentVersion:
        """What the tables compare committed scenes with to call them stale."""
        sources = {plan.scene_id: plan.source_hash for plan in self.scenes if plan.source_hash}
        return CurrentVersion(self.config_hash, self.code_version, sources)


class ScenePlanner:
    """`plan_scene` for many scenes with the store's digest cache (unchanged files are not re-read), each
    plan handed out as soon as it is decided, so that a run can start a scene's work while the next scenes'
    inputs are still being hashed (a first run over many scenes reads every input file once)."""

    def __init__(self, store: StoreRef, root: Path, pairs_dir: Path | None, config: PreprocessConfig):
        self.root, self.pairs_dir = root, pairs_dir
        self.config_hash, self.code_version = hashing.config_hash(config), hashing.code_version()
        self.store = backend_for(store)  # one backend for every scene: an object store's snapshot is read once
        self.digests = hashing.DigestCache.of_store(self.store)

    def plans(self, scene_ids: Sequence[str]) -> Iterator[ScenePlan]:
        """The plans of `scene_ids`, in that order."""
        # The first plan is decided alone: beside the others it would share the GIL with their hashing and
        # reach the workers later (0.14 s instead of 0.04 s for four small scenes). The rest start once the
        # caller asks for the next plan, after submitting the first; threads overlap their I/O (hashlib
        # releases the GIL).
        yield from map(self._plan, scene_ids[:1])
        with ThreadPoolExecutor(max_workers=4) as pool:
            yield from pool.map(self._plan, scene_ids[1:])

    def _plan(self, scene_id: str) -> ScenePlan:
        return plan_scene(
            self.store, self.root, scene_id, self.pairs_dir, self.config_hash, self.code_version, self.digests
        )

    def finish(self, plans: list[ScenePlan]) -> StorePlan:
        """The run's StorePlan of `plans`; the digest cache saved for the next run."""
        try:
            self.digests.save()
        except OSError as exc:  # a cache: a full or read-only disk only costs re-reading the inputs next time
            log.warning("could not save the input digest cache: %s", failure_reason(exc))
        return StorePlan(plans, self.config_hash, self.code_version, self.digests.misses, self.digests.hits)


def plan_scenes(
    store: StoreRef, root: Path, scene_ids: Sequence[str], pairs_dir: Path | None, config: PreprocessConfig
) -> StorePlan:
    """Every scene's plan at once (ScenePlanner)."""
    planner = ScenePlanner(store, root, pairs_dir, config)
    return planner.finish(list(planner.plans(scene_ids)))


def run_scene(
    root: str | Path,
    store: str | Path,
    scene_id: str,
    config: PreprocessConfig,
    pairs_dir: str | Path | None = None,
    split: str = "",
    source_hash: str | None = None,
) -> dict[str, Any]:
    """Read, preprocess and commit one scene. Returns `{scene_id, status, frames, seconds, path,
    unknown_labels}` (the last: `UnknownLabelReport.to_attrs()`, for the caller's one warning).

    Raises the reader's/preprocessing's ValueError/FileNotFoundError for bad input, a lasting OSError
    (no space, permission) as itself, anything else for transient trouble; a failure leaves the store
    exactly as it was."""
    with task_errors(store):
        return _run_scene(root, store, scene_id, config, pairs_dir, split, source_hash)


@contextmanager
def task_errors(store: str | Path) -> Iterator[None]:
    """Re-raise a task's error as the orchestrator decides retries on it: libraries wrap OS errors (zarr's
    writer, PIL), so the lasting OS error inside (no space, permission) is raised as itself, naming the
    store when the OS named no file."""
    try:
        yield
    except Exception as exc:
        os_error = lasting_os_error(exc)
        if os_error is None or isinstance(exc, ValueError):
            raise
        if os_error.filename is None and os_error.errno in WRITE_ERRNOS:
            # A write into a full disk names no file: the store is the only place this task writes to.
            os_error = OSError(os_error.errno, os_error.strerror, str(store))
        if os_error is exc:
            raise
        raise os_error from exc


def _run_scene(
    root: str | Path,
    store: str | Path,
    scene_id: str,
    config: PreprocessConfig,
    pairs_dir: str | Path | None,
    split: str,
    source_hash: str | None,
) -> dict[str, Any]:
    prepare_worker()
    from datasets.preprocess.scene import preprocess_scene  # imports pyrender

    start = time.perf_counter()
    record = read_scene(root, scene_id, pairs_dir)
    if source_hash is None:
        source_hash = hashing.source_hash(record.source_files, root)
    hashed = time.perf_counter()
    scene = preprocess_scene(record, config)
    summary = write_scene(
        store,
        scene,
        source_hash=source_hash,
        config_hash=hashing.config_hash(config),
        code_version=hashing.code_version(),
        split=split,
        extra_timings={"read_and_hash": hashed - start},
        started_at=start,
        made_with={"config": asdict(config), "pairs_dir": str(Path(pairs_dir).resolve()) if pairs_dir else None},
    )
    total = summary["timings"]["total"]
    log.info("scene %s: %d frames committed in %.1f s", scene_id, scene.num_frames, total)
    return {
        "scene_id": scene_id,
        "status": "done",
        "frames": summary["frames"],
        "seconds": total,
        "commit_seconds": summary["commit_seconds"],
        "path": summary["path"],
        "unknown_labels": scene.unknown_labels.to_attrs(),
    }
