"""Where the preprocess flow places its jobs: breadth first, a scene's jobs kept on its worker, commits first,
idle workers taking the last job of the scene with most left, no second job per worker in the tail, workers
that leave or join; and that a placed plain Dask task runs on the worker it was placed on."""

from __future__ import annotations

import distributed
from _in_process_dask import in_process_client

from flows.chunk_dispatch import ChunkDispatcher, Job
from flows.plain_dask_tasks import submit_plain


class _Cluster:
    """Workers by name, and every submission as (worker, scene, job index); futures are the jobs' tags."""

    def __init__(self, *workers: str, threads: int = 1):
        self.threads = dict.fromkeys(workers, threads)
        self.submitted: list[tuple[str, str, int]] = []

    def jobs(self, scene: str, count: int, commit: bool = False) -> list[Job]:
        return [Job(scene, self._submitter(scene, i), commit=commit, tag=(scene, i)) for i in range(count)]

    def _submitter(self, scene: str, index: int):
        def submit(worker: str):
            self.submitted.append((worker, scene, index))
            return (scene, index, len(self.submitted))  # a unique, hashable stand-in for a future

        return submit


def _dispatcher(cluster: _Cluster) -> ChunkDispatcher:
    return ChunkDispatcher(workers=lambda: cluster.threads)


def test_every_worker_gets_a_first_job_before_any_gets_a_second_and_thieves_take_from_the_end():
    cluster = _Cluster("a", "b", "c")
    dispatcher = _dispatcher(cluster)
    dispatcher.add(cluster.jobs("s1", 8))
    placed = dispatcher.place()
    assert cluster.submitted[:3] == [("a", "s1", 0), ("b", "s1", 7), ("c", "s1", 6)]
    # Second slots: each worker goes on with the scene it holds, from the front.
    assert cluster.submitted[3:] == [("a", "s1", 1), ("b", "s1", 2), ("c", "s1", 3)]
    assert len(placed) == 6 and dispatcher.waiting == 2


def test_a_worker_keeps_to_its_scene_and_a_free_worker_starts_a_new_one():
    cluster = _Cluster("a", "b")
    dispatcher = _dispatcher(cluster)
    dispatcher.add(cluster.jobs("s1", 3) + cluster.jobs("s2", 3))
    first = dispatcher.place()
    assert sorted(cluster.submitted) == [("a", "s1", 0), ("a", "s1", 1), ("b", "s2", 0), ("b", "s2", 1)]
    for future, job in first.items():
        if job.tag == ("s1", 0):
            dispatcher.ended(future)
    dispatcher.place()
    assert cluster.submitted[-1] == ("a", "s1", 2)


def test_a_commit_goes_to_the_next_free_slot_before_any_chunk():
    cluster = _Cluster("a")
    dispatcher = _dispatcher(cluster)
    dispatcher.add(cluster.jobs("s1", 4))
    placed = dispatcher.place()
    dispatcher.add(cluster.jobs("s0", 1, commit=True))
    dispatcher.ended(next(iter(placed)))
    dispatcher.place()
    assert cluster.submitted[-1] == ("a", "s0", 0)


def test_no_second_job_per_worker_when_fewer_jobs_wait_than_workers():
    cluster = _Cluster("a", "b", "c", "d")
    dispatcher = _dispatcher(cluster)
    dispatcher.add(cluster.jobs("s1", 6))
    dispatcher.place()
    assert len(cluster.submitted) == 4 and dispatcher.waiting == 2, "two left for whoever frees first"
    dispatcher.add(cluster.jobs("s0", 1, commit=True))
    dispatcher.place()
    assert cluster.submitted[-1][1] == "s0" and dispatcher.waiting == 2, "a commit is queued all the same"
    dispatcher.place(more_coming=True)
    assert dispatcher.waiting == 0, "while scenes are still planned, the run is not in its tail"


def test_an_idle_worker_takes_the_last_job_of_the_scene_with_most_left():
    cluster = _Cluster("a", "b")
    dispatcher = ChunkDispatcher(workers=lambda: cluster.threads, depth=1)
    dispatcher.add(cluster.jobs("s1", 1) + cluster.jobs("s2", 5))
    placed = dispatcher.place()  # a: s1[0], b: s2[0]
    dispatcher.ended(next(future for future, job in placed.items() if job.scene == "s1"))
    dispatcher.place()
    assert cluster.submitted[-1] == ("a", "s2", 4), "no scene left to start: s2's last job"


def test_a_dropped_scene_submits_nothing_more():
    cluster = _Cluster("a")
    dispatcher = ChunkDispatcher(workers=lambda: cluster.threads, depth=1)
    dispatcher.add(cluster.jobs("s1", 3) + cluster.jobs("s2", 1))
    placed = dispatcher.place()
    assert dispatcher.drop("s1") == 2
    dispatcher.ended(next(iter(placed)))
    dispatcher.place()
    assert [scene for _, scene, _ in cluster.submitted] == ["s1", "s2"]


def test_workers_that_leave_are_forgotten_and_workers_that_join_get_jobs():
    cluster = _Cluster("a", "b")
    dispatcher = ChunkDispatcher(workers=lambda: cluster.threads, depth=1)
    dispatcher.add(cluster.jobs("s1", 6))
    dispatcher.place()
    del cluster.threads["b"]
    cluster.threads["c"] = 1
    dispatcher.place()
    assert cluster.submitted[-1][0] == "c" and "b" not in dispatcher._load


def test_a_worker_with_two_threads_gets_two_jobs_per_slot():
    cluster = _Cluster("a", threads=2)
    dispatcher = _dispatcher(cluster)
    dispatcher.add(cluster.jobs("s1", 8))
    dispatcher.place()
    assert len(cluster.submitted) == 4


def test_free_slots_count_what_the_workers_of_the_last_placement_could_still_take():
    cluster = _Cluster("a", "b", threads=2)
    dispatcher = _dispatcher(cluster)
    assert dispatcher.free_slots == 0, "before any placement no worker is known"
    dispatcher.add(cluster.jobs("s1", 5))
    placed = dispatcher.place(more_coming=True)
    assert len(placed) == 5 and dispatcher.free_slots == 3  # 2 workers x 2 threads x depth 2, 5 held
    dispatcher.ended(next(iter(placed)))
    assert dispatcher.free_slots == 4


def _where_am_i() -> str:
    return distributed.get_worker().address


def test_a_placed_plain_task_runs_on_its_worker():
    with in_process_client(2) as client:
        workers = sorted(client.nthreads())
        placed = [
            (worker, submit_plain(client, "where", _where_am_i, retries=0, retry_delay_seconds=0, is_permanent=bool,
                                  worker=worker))
            for worker in workers * 3
        ]  # fmt: skip
        assert [future.result().value for _, future in placed] == [worker for worker, _ in placed]
