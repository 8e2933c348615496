"""Which worker runs which of a preprocess run's tasks: the flow places them itself, a few per worker at a time.

Handing every frame chunk to Dask at once let its scheduler start any chunk on any worker: on 16 workers
nearly every chunk landed on a worker new to its scene and rebuilt the scene's mesh (160 builds for 32
scenes, 160 chunks); pinning a scene's chunks to one home worker with a loose restriction left other workers
waiting for Dask's work stealing (taken back). Here the flow keeps the jobs not yet submitted and gives each
worker at most `depth` per thread at a time (one running, one waiting in the worker, so that a worker never
waits for the flow between two tasks), choosing for a worker with a free slot:

1. a scene's commit (it makes the scene visible; it never waits behind chunks);
2. the next job of the scene that worker works on (its mesh is built there already);
3. else the first scene nobody has started (the worker's new scene);
4. else the last job of the scene with the most jobs left: no worker idles while a job waits, and the tail of
   the run is split job by job (where a worker gets a second job only while jobs enough wait for all).

A job is submitted to one worker with `allow_other_workers`: should that worker leave, Dask runs the job
elsewhere (a strict restriction would leave a job, or a finished result lost with its worker, waiting for
that worker forever). Dask's work stealing would move such jobs between workers behind the dispatcher's back
(measured on 16 workers: the count of each worker's jobs went wrong and workers sat idle for whole chunks,
14.7 s between tasks per worker), so the schedulers the project starts for preprocessing do no stealing
(flows.dask_cluster.PREPROCESS_WORK_STEALING). Workers that join later (Slurm jobs that start late)
are used from the next placement on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TASKS_PER_THREAD = 2
"""Jobs placed on a worker per thread: the one it runs and the next, so it goes on without waiting."""


@dataclass(frozen=True, eq=False)
class Job:
    """One task of a scene, not yet submitted: `submit(worker address)` submits it there, returning its future."""

    scene: str
    submit: Callable[[str], Any]
    commit: bool = False
    """A scene's commit: placed before any other job."""
    tag: Any = None
    """The caller's own record of the job (e.g. which chunk), handed back with its future."""


@dataclass
class ChunkDispatcher:
    """Places jobs on workers as described above. Not thread-safe: one thread adds, places and ends jobs."""

    workers: Callable[[], dict[str, int]]
    """The cluster's workers now: address -> threads."""
    depth: int = TASKS_PER_THREAD
    _pending: dict[str, deque[Job]] = field(default_factory=dict)
    """Scene -> its jobs not yet submitted, scenes in the order they were added."""
    _commits: deque[Job] = field(default_factory=deque)
    _started: set[str] = field(default_factory=set)
    _homes: dict[str, str] = field(default_factory=dict)
    """Worker -> the scene it was last given a job of."""
    _placed: dict[Any, str] = field(default_factory=dict)
    """Future of a placed job -> the worker it was placed on."""
    _load: dict[str, int] = field(default_factory=dict)
    """Worker -> its placed jobs that have not ended."""
    _threads: dict[str, int] = field(default_factory=dict)
    """The workers and their threads as the last placement saw them."""

    def add(self, jobs: list[Job]) -> None:
        """Queue `jobs` (a scene's chunks in order, a whole-scene task, or a commit)."""
        for job in jobs:
            if job.commit:
                self._commits.append(job)
            else:
                self._pending.setdefault(job.scene, deque()).append(job)

    def drop(self, scene: str) -> int:
        """Forget the jobs of `scene` not yet submitted (it failed: the rest would be wasted); how many."""
        jobs = self._pending.pop(scene, ())
        return len(jobs)

    @property
    def waiting(self) -> int:
        """Jobs not yet submitted."""
        return len(self._commits) + sum(len(jobs) for jobs in self._pending.values())

    @property
    def free_slots(self) -> int:
        """Slots the workers of the last placement have free: jobs they could take now and do not hold."""
        return sum(max(0, self.depth * n - self._load.get(w, 0)) for w, n in self._threads.items())

    def ended(self, future: Any) -> None:
        """A placed job's future ended (whatever its outcome): its worker has a free slot again."""
        worker = self._placed.pop(future, None)
        if worker in self._load:
            self._load[worker] -= 1

    def place(self, more_coming: bool = False) -> dict[Any, Job]:
        """Submit jobs into the workers' free slots; the new futures and their jobs. `more_coming`: scenes are
        still being planned, so the run is not in its tail yet."""
        threads = self._current_workers()
        placed: dict[Any, Job] = {}
        # Breadth first: every worker gets a first job before any gets a second. In the tail a second job is
        # placed only while there are jobs enough for everyone: queued behind a long chunk it would wait for
        # that chunk, where kept back it goes to whichever worker frees first. Commits are short: queued,
        # they cost no worker a wait.
        for slot in range(1, self.depth + 1):
            tail = slot > 1 and not more_coming and self.waiting < len(threads)
            for worker in sorted(threads, key=lambda w: self._load[w]):
                while self._load[worker] < slot * threads[worker] and (self._commits or not tail):
                    job = self._next_job(worker)
                    if job is None:
                        return placed
                    future = job.submit(worker)
                    self._placed[future] = worker
                    self._load[worker] += 1
                    placed[future] = job
        return placed

    def _current_workers(self) -> dict[str, int]:
        threads = {address: max(1, int(n)) for address, n in self.workers().items()}
        for gone in set(self._load) - set(threads):
            # Its jobs end elsewhere (Dask reruns them) or fail; they no longer count against any worker.
            del self._load[gone]
            self._homes.pop(gone, None)
        for address in threads:
            self._load.setdefault(address, 0)
        self._threads = threads
        return threads

    def _next_job(self, worker: str) -> Job | None:
        if self._commits:
            return self._commits.popleft()
        home = self._homes.get(worker)
        if self._pending.get(home):
            return self._take(home, first=True)
        for scene in self._pending:
            if scene not in self._started:
                self._started.add(scene)
                self._homes[worker] = scene
                return self._take(scene, first=True)
        if not self._pending:
            return None
        victim = max(self._pending, key=lambda scene: len(self._pending[scene]))
        self._homes[worker] = victim
        return self._take(victim, first=False)

    def _take(self, scene: str, first: bool) -> Job:
        jobs = self._pending[scene]
        job = jobs.popleft() if first else jobs.pop()
        if not jobs:
            del self._pending[scene]
        return job
