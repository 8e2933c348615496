"""The Prefect tasks of the preprocess flow: a whole scene, and the commit of a scene run as frame chunks
(its chunks are plain Dask tasks, flows.plain_dask_tasks). Both retry transient failures only."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from datasets.preprocess.chunk_job import commit_chunked_scene
from datasets.preprocess.error_kinds import is_permanent
from datasets.preprocess.result import PreprocessConfig
from datasets.preprocess.scene_job import run_scene

TASK_RETRIES = 2
RETRY_DELAY_SECONDS = 2


def retry_transient(task, task_run, state) -> bool:
    """Retry unless the failure is permanent: bad scene input, no space, no permission (error_kinds)."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - an unreadable result is itself a transient problem
        return True
    return not (isinstance(exc, BaseException) and is_permanent(exc))


_TASK_OPTIONS = {
    "retries": TASK_RETRIES,
    "retry_delay_seconds": RETRY_DELAY_SECONDS,
    "retry_condition_fn": retry_transient,
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
