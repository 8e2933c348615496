"""Prefect flow `evaluate`: checkpoints x post-processings x keyframe counts x scenes of a store split.

The inputs are checked and resolved first (`flows.sweep_plan`). Each (checkpoint, keyframes) pair is one
task that runs the library's sweep of its configurations (`datasets.evaluation.sweep`: predict every scene
of the split once, post-process it each way, score both PQ modes, time and memory) and logs every
configuration (checkpoint, post-processing, keyframes) as one MLflow child run; the sweep is the parent run
(`flows.sweep_tracking`). Tasks run one after the other, never concurrently, so that seconds and memory are
their own; a configuration's seconds are the shared inference plus its own post-processing.

Import this module only after `flows.prefect_env.configure_prefect_env` (Prefect reads settings at import).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from datasets.evaluation.label_maps import EvalVocabulary
from datasets.evaluation.predictors import load_predictor, model_variant
from datasets.evaluation.scene_run import EvalSettings
from datasets.evaluation.sweep import evaluate_configurations
from datasets.store.location import StoreLocation
from datasets.store.queries import store_version
from datasets.store.reader import StoreReader
from flows import mlflow_names as names
from flows import sweep_tracking
from flows.mlflow_tracking import run_status_on_exit
from flows.run_folder import checkpoint_label
from flows.sweep_plan import keyframes_label, plan_sweep


@task(
    name="evaluate-configurations",
    task_run_name="{label}-kf{keyframes_text}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def configuration_group_task(
    store: str,
    checkpoint: str,
    label: str,
    postprocess: list[str],
    keyframes: int | None,
    keyframes_text: str,
    scenes: list[str],
    split: str,
    max_views: int | None,
    image_size: int,
    device: str,
    query_vocabulary: str,
    visual_scenes: int,
    tracking_uri: str,
    experiment_id: str,
    parent_run_id: str,
) -> list[dict[str, Any]]:
    """Evaluate one checkpoint and keyframe count with every post-processing over the scenes (each scene's
    inference once, shared by the post-processings) and log each configuration as a child run. Returns
    their summaries, in the order of `postprocess`."""
    logger = get_run_logger()
    settings = [
        EvalSettings(
            postprocess=name,
            keyframes=keyframes,
            max_views=max_views,
            image_size=image_size,
            query_vocabulary=query_vocabulary,
        )
        for name in postprocess
    ]
    reader = StoreReader(store)
    vocabulary = EvalVocabulary.from_categories(reader.categories(), store)
    predictor = load_predictor(checkpoint, device)
    shared = {
        names.CHECKPOINT: str(Path(checkpoint).resolve()),
        names.CHECKPOINT_LABEL: label,
        names.VARIANT: model_variant(predictor),
        names.KEYFRAMES: keyframes_text,
        names.SPLIT: split,
        names.MAX_VIEWS: "all" if max_views is None else str(max_views),
        names.IMAGE_SIZE: str(image_size),
        names.DEVICE: device,
        names.STORE: str(StoreLocation.parse(store).resolved()),
        names.QUERY_VOCABULARY: query_vocabulary,
        names.NUM_SCENES: str(len(scenes)),
    }
    client = MlflowClient(tracking_uri=tracking_uri)
    params = [{**shared, names.POSTPROCESS: name} for name in postprocess]
    run_names = [f"{label} | {name} | kf={keyframes_text}" for name in postprocess]
    version = store_version(reader.backend)
    run_ids = [
        _start_child_run(client, experiment_id, parent_run_id, one, run_name, version)
        for one, run_name in zip(params, run_names, strict=True)
    ]
    with contextlib.ExitStack() as stack:
        for run_id in run_ids:
            stack.enter_context(run_status_on_exit(client, run_id))
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="panst3r-eval-")))
        callbacks = [
            _scene_logger(logger, client, run_id, run_name, tmp)
            for run_id, run_name in zip(run_ids, run_names, strict=True)
        ]
        results = evaluate_configurations(
            predictor, reader, scenes, settings, vocabulary, visual_scenes, callbacks
        )
        for run_id, result in zip(run_ids, results, strict=True):
            sweep_tracking.log_configuration(client, run_id, result, vocabulary, tmp / run_id)
    return [
        sweep_tracking.configuration_summary(run_id, one, result.metrics)
        for run_id, one, result in zip(run_ids, params, results, strict=True)
    ]


def _start_child_run(client: MlflowClient, experiment_id, parent_run_id, params, run_name, version) -> str:
    """One configuration's child run, tagged with the store version it reads."""
    run_id = sweep_tracking.start_configuration_run(client, experiment_id, parent_run_id, params, run_name)
    client.set_tag(run_id, names.STORE_VERSION_TAG, version.id)
    client.set_tag(run_id, names.STORE_VERSION_KIND_TAG, version.kind)
    return run_id


def _scene_logger(logger, client: MlflowClient, run_id: str, run_name: str, folder: Path):
    """The per-scene callback of one configuration: a log line, and its picture as an artifact."""

    def on_scene(scores, picture) -> None:
        logger.info(
            "%s | scene %s: PQ %.3f (coco %.3f), %d views, %.2f s",
            run_name,
            scores.scene_id,
            scores.scene.all.pq or 0.0,
            scores.coco.all.pq or 0.0,
            scores.num_views,
            scores.extra["seconds"],
        )
        if picture is not None:
            sweep_tracking.log_picture(client, run_id, picture, scores.scene_id, folder / run_id)

    return on_scene


@flow(name="evaluate")
def evaluate(
    store: str,
    checkpoints: list[str],
    postprocess: list[str] | None = None,
    keyframes: list[int | None] | None = None,
    split: str = "val",
    max_views: int | None = None,
    device: str = "auto",
    experiment: str = "panst3r-eval",
    runs_dir: str = "runs",
    tracking_uri: str | None = None,
    image_size: int | None = None,
    query_vocabulary: str = "store",
    visual_scenes: int = 2,
    sweep_name: str | None = None,
    reuse: bool = False,
) -> dict[str, Any]:
    """Sweep checkpoints x post-processings x keyframe counts (None = all views) over the scenes of `split`.
    With `reuse`, a finished sweep of the same store content, checkpoint files and settings is returned
    instead of evaluating again.

    Returns `{parent_run_id, experiment_id, tracking_uri, scenes, runs: [summary per configuration], reused}`."""
    logger = get_run_logger()
    plan = plan_sweep(
        store, checkpoints, postprocess, keyframes, split, max_views, device, image_size, query_vocabulary
    )
    uri, experiment_id = sweep_tracking.open_experiment(tracking_uri, runs_dir, experiment)
    client = MlflowClient(tracking_uri=uri)
    key = plan.key()
    outcome = {
        "experiment": experiment,
        "experiment_id": experiment_id,
        "tracking_uri": uri,
        "sweep_key": key,
        "split": split,
        "scenes": plan.scenes,
    }
    previous = sweep_tracking.finished_sweep(client, experiment_id, key) if reuse else None
    if previous is not None:
        logger.info("sweep %s already evaluated exactly this (key %s); reusing it", previous, key)
        runs = sweep_tracking.child_summaries(client, experiment_id, previous)
        return {"parent_run_id": previous, **outcome, "runs": runs, "reused": True}
    run_name = sweep_name or f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    version_tags = plan.version_tags()
    parent_id = sweep_tracking.start_sweep_run(
        client, experiment_id, key, plan.store, plan.params(), run_name, version_tags
    )
    logger.info("sweep %s: %s", parent_id, plan.describe())
    with run_status_on_exit(client, parent_id):
        summaries = [
            summary
            for checkpoint, count in plan.inference_groups()
            for summary in configuration_group_task(
                str(plan.store),
                checkpoint,
                checkpoint_label(checkpoint),
                plan.postprocess,
                count,
                keyframes_label(count),
                plan.scenes,
                split,
                max_views,
                plan.image_sizes[checkpoint],
                plan.device,
                query_vocabulary,
                visual_scenes,
                uri,
                experiment_id,
                parent_id,
            )
        ]
        with tempfile.TemporaryDirectory(prefix="panst3r-sweep-") as tmp:
            sweep_tracking.log_sweep_result(client, parent_id, summaries, Path(tmp))
    return {"parent_run_id": parent_id, **outcome, "runs": summaries, "reused": False}
