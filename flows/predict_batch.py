"""Prefect flow `predict-batch`: predict every scene of a store (one split) or of a list of image folders
on a Dask cluster with one GPU per worker (CPU workers without GPUs).

The flow process decides what to do (a scene whose manifest has this run's checkpoint content hash,
settings and input digest is skipped), submits two tasks per remaining scene and records each outcome:
a failed scene gets one record with its reason (OUT/_failed/<scene>.json) and the others go on. Workers
load the model once each and commit whole scene folders (datasets/batch_prediction).

The two tasks: `predict-views` (the GPU: read and predict, holding the worker's GPU resource) and
`export-scene` (the host: write the outputs and commit them), which takes the prediction where it lies.
A GPU worker has two threads and one GPU: while one thread exports a scene, the other predicts the next
(the export of a 16-view scene took longer than its prediction on an H200). Each export is submitted right
after its prediction, so it outranks every later prediction: a worker never holds more than about two
predicted scenes waiting to be written.
Import this module only after `flows.prefect_env.configure_prefect_env` (Prefect reads settings at import).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed

from datasets.batch_prediction.manifest import ScenePlan, plan_scenes
from datasets.batch_prediction.output_folder import BatchOutput
from datasets.batch_prediction.scene_job import BatchJob, ScenePrediction, commit_prediction, predict_views
from datasets.batch_prediction.scenes import BatchScene, folder_scenes, store_scenes
from datasets.batch_prediction.settings import PredictionSettings, prediction_identity
from datasets.preprocess.error_kinds import failure_reason
from datasets.store.failures import utc_now
from flows.dask_cluster import ClusterChoice, choose_cluster, make_task_runner
from flows.gpu_workers import WorkerLayout, gpu_tasks, local_layout
from flows.task_futures import task_outcome

SECONDS_PER_HOUR = 3600.0


@task(
    name="predict-views",
    task_run_name="predict-{scene_id}",
    cache_policy=NO_CACHE,  # skipping is decided from the manifests, see plan_scenes
    persist_result=False,
)
def predict_views_task(job: BatchJob, plan: ScenePlan, scene_id: str) -> ScenePrediction:
    return predict_views(job, plan)


@task(name="export-scene", task_run_name="export-{scene_id}", cache_policy=NO_CACHE, persist_result=False)
def export_scene_task(job: BatchJob, plan: ScenePlan, prediction: ScenePrediction, scene_id: str) -> dict[str, Any]:
    return commit_prediction(job, plan, prediction)


@flow(name="predict-batch", task_runner=make_task_runner(choose_cluster(workers=1)))
def predict_batch(
    out: str,
    weights: str,
    settings: dict[str, Any],
    store: str | None = None,
    split: str = "all",
    scenes: list[str] | None = None,
    folders: list[str] | None = None,
    device: str = "auto",
    force: bool = False,
    gpus: int = 0,
) -> dict[str, Any]:
    """Predict the scenes of `store` (split `split`, or only `scenes`) or of `folders` into OUT/<scene>/.
    `settings`: `PredictionSettings` fields; `device`: what each worker predicts on (cpu, cuda: the
    worker's own GPU, auto); `gpus`: GPUs the run holds (each task asks for one when > 0); `force`:
    predict up-to-date scenes too. Returns the run summary
    `{done: {scene: {...}}, skipped, failed: {scene: reason}, seconds, predict_seconds, out, ...}`."""
    logger = get_run_logger()
    started = time.perf_counter()
    chosen = PredictionSettings.from_dict(settings)
    sources = _scenes(store, split, scenes, folders)
    output = BatchOutput(out)
    with output.lock():
        output.sweep()  # leftovers of killed runs; nothing else writes here while we hold the lock
        cache = output.digest_cache()
        identity = prediction_identity(weights, chosen, cache)
        cache.save()
        plans = plan_scenes(output, sources, identity, force)
        _log_plan(logger, plans, out)
        job = BatchJob(out, weights, chosen, identity, device)
        outcome = _run_scenes(logger, output, job, [p for p in plans if p.run], gpus > 0)
        output.sweep()  # every task has ended: a failed commit may have raced with its own clean-up
    summary = {
        "done": outcome.done,
        "skipped": sorted(p.scene.scene_id for p in plans if not p.run),
        "failed": dict(sorted(outcome.failed.items())),
        "seconds": time.perf_counter() - started,
        "predict_seconds": outcome.seconds,
        "out": str(out),
        "checkpoint_hash": identity.checkpoint_hash,
        "gpus": gpus,
    }
    summary.update(throughput(len(outcome.done), outcome.seconds, gpus))
    _log_summary(logger, summary)
    return summary


def _scenes(
    store: str | None, split: str, scenes: list[str] | None, folders: list[str] | None
) -> list[BatchScene]:
    if (store is None) == (not folders):
        raise ValueError("give exactly one of --store (the scenes of a store) or --folders (image folders)")
    if store is not None:
        return store_scenes(store, split, scenes)
    if scenes:
        raise ValueError(
            "--scenes selects scenes of a --store; with --folders, list only the folders you want"
        )
    return folder_scenes(folders or [])


def throughput(scenes_done: int, seconds: float, gpus: int) -> dict[str, float]:
    """Scenes per hour of the prediction phase, and per GPU-hour (0 without GPUs; the benchmark passes the
    CPU worker count as `gpus` to get scenes per worker-hour)."""
    hours = seconds / SECONDS_PER_HOUR
    per_hour = scenes_done / hours if hours > 0 else 0.0
    return {"scenes_per_hour": per_hour, "scenes_per_gpu_hour": per_hour / gpus if gpus else 0.0}


@dataclass
class _Outcome:
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Scene -> its task's result (views, segments, seconds, device, predictor)."""
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    """From the first submission to the last scene's end."""


def _run_scenes(
    logger, output: BatchOutput, job: BatchJob, to_run: list[ScenePlan], uses_gpu: bool
) -> _Outcome:
    """Submit one task per scene and record each as it ends, with progress and an ETA in the log."""
    outcome = _Outcome()
    started = time.perf_counter()
    futures = {}
    for plan in to_run:  # each export right after its prediction: it outranks the later predictions
        with gpu_tasks(uses_gpu):
            predicted = predict_views_task.submit(job, plan, plan.scene.scene_id)
        exported = export_scene_task.submit(job, plan, predicted, plan.scene.scene_id)
        futures[exported] = (plan, predicted)
    for finished, future in enumerate(as_completed(list(futures)), start=1):
        plan, predicted = futures[future]
        result, exc = _scene_outcome(predicted, future)
        if exc is None:
            _record_done(logger, output, outcome, plan, result)
        else:
            _record_failed(logger, output, outcome, plan, exc)
        elapsed = time.perf_counter() - started
        eta = elapsed / finished * (len(to_run) - finished)
        logger.info("%d/%d scenes finished, %.0f s elapsed, ETA %.0f s", finished, len(to_run), elapsed, eta)
    outcome.seconds = time.perf_counter() - started
    return outcome


def _scene_outcome(predicted, exported) -> tuple[object | None, BaseException | None]:
    """The scene's result, or the exception of the task that failed it: a failed prediction is reported
    as itself, not as the export that could not start without it."""
    result, exc = task_outcome(exported)
    if exc is None:
        return result, None
    _, predict_exc = task_outcome(predicted)
    return None, predict_exc or exc


def _record_done(logger, output: BatchOutput, outcome: _Outcome, plan: ScenePlan, result) -> None:
    scene_id = plan.scene.scene_id
    output.clear_failure(scene_id)
    outcome.done[scene_id] = dict(result)
    logger.info(
        "scene %s done: %d views, %d segments, %.1f s on %s",
        scene_id,
        result["views"],
        result["segments"],
        result["seconds"],
        result["device"],
    )


def _record_failed(
    logger, output: BatchOutput, outcome: _Outcome, plan: ScenePlan, exc: BaseException
) -> None:
    scene_id = plan.scene.scene_id
    reason = failure_reason(exc)
    record = {
        "scene_id": scene_id,
        "error": type(exc).__name__,
        "reason": reason,
        "source": plan.scene.source,
        "prediction_key": plan.prediction_key,
        "time": utc_now(),
    }
    try:
        output.write_failure(scene_id, record)
    except OSError as write_error:  # a full disk must not end the run; the summary still names the scene
        logger.warning("could not record the failure of %s: %s", scene_id, failure_reason(write_error))
    outcome.failed[scene_id] = reason
    logger.warning("scene %s failed: %s", scene_id, reason)


def _log_plan(logger, plans: list[ScenePlan], out: str) -> None:
    to_run = [p for p in plans if p.run]
    logger.info(
        "%d scenes: %d to predict, %d up to date (skipped); output %s",
        len(plans),
        len(to_run),
        len(plans) - len(to_run),
        out,
    )
    for plan in to_run:
        logger.info("scene %s: %s", plan.scene.scene_id, plan.why)


def _log_summary(logger, summary: dict[str, Any]) -> None:
    logger.info(
        "predict-batch finished in %.1f s: %d done, %d skipped, %d failed; %.1f scenes/hour",
        summary["seconds"],
        len(summary["done"]),
        len(summary["skipped"]),
        len(summary["failed"]),
        summary["scenes_per_hour"],
    )


def run_predict_batch(
    out: str,
    weights: str,
    settings: PredictionSettings,
    store: str | None = None,
    split: str = "all",
    scenes: Sequence[str] | None = None,
    folders: Sequence[str] | None = None,
    device: str = "auto",
    force: bool = False,
    cluster: ClusterChoice | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Run the flow in this process on `cluster` (default: a local one, one worker per visible GPU, or
    `workers` CPU workers); `device` auto/cuda/cpu."""
    if cluster is None or cluster.kind == "local":
        layout = local_layout(device, workers)
        cluster = choose_cluster("local", layout.workers)
        device = layout.device
    else:
        layout = WorkerLayout(0, ())  # the cluster's owner pins its workers; each resolves `device` itself
    runner = make_task_runner(cluster, layout.local_worker_options())
    summary = predict_batch.with_options(task_runner=runner)(
        out=str(out),
        weights=str(weights),
        settings=asdict(settings),
        store=None if store is None else str(store),
        split=split,
        scenes=list(scenes) if scenes else None,
        folders=[str(f) for f in folders] if folders else None,
        device=device,
        force=force,
        gpus=len(layout.gpus) if layout.gpus else 0,
    )
    summary["workers"] = (
        layout.describe() if cluster.kind == "local" else f"the {cluster.kind} Dask cluster's workers"
    )
    return summary
