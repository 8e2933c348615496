"""Predict one scene of a batch run and commit its outputs: the unit of work a Dask worker runs.

The model is loaded once per worker process (`load_predictor` keeps it), not once per scene.
"""

from __future__ import annotations

import os
import time
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datasets.batch_prediction.manifest import SceneManifest, ScenePlan
from datasets.batch_prediction.output_folder import BatchOutput, check_scene_id
from datasets.batch_prediction.scenes import read_views
from datasets.batch_prediction.settings import PredictionIdentity, PredictionSettings
from datasets.evaluation.predictors import load_predictor
from datasets.prediction_export import ExportOptions, export_reconstruction
from datasets.store.failures import utc_now
from panst3r_core.device import resolve_device
from panst3r_core.pretrained import resolve_weights


@dataclass(frozen=True)
class BatchJob:
    """What every scene of a run shares: where outputs go, the checkpoint and how to predict."""

    out: str
    checkpoint: str
    settings: PredictionSettings
    identity: PredictionIdentity
    device: str = "auto"
    """cpu, cuda (the worker's GPU: each worker sees only its own) or auto (cuda when the worker has one)."""


@dataclass
class ScenePrediction:
    """A scene predicted but not yet written: what `commit_prediction` needs, passed between the two."""

    reconstruction: Any
    device: str
    predictor: str
    """The token of the model load that predicted it (see _load_token)."""
    seconds: float
    """Reading and predicting the views."""


def predict_scene(job: BatchJob, plan: ScenePlan) -> dict[str, Any]:
    """Read the scene's views, predict them, write the outputs and manifest into OUT/<scene>/ in one
    commit. Returns `{scene_id, views, segments, seconds, predict_seconds, finished_at, device, predictor}`;
    raises on any failure, leaving OUT/<scene>/ as it was."""
    return commit_prediction(job, plan, predict_views(job, plan))


def predict_views(job: BatchJob, plan: ScenePlan) -> ScenePrediction:
    """The GPU half of a scene: read its views and predict them (the model loaded once per process)."""
    started = time.perf_counter()
    check_scene_id(plan.scene.scene_id)  # before the expensive part: it could not be committed anyway
    device = resolve_device(job.device)
    predictor = load_predictor(
        job.checkpoint, device, revision=job.identity.checkpoint_hash, **job.settings.predictor_options()
    )
    images, view_names = read_views(plan.scene)
    recon = predictor.predict(
        images,
        class_names=job.settings.class_names,
        class_embeddings=_class_embeddings(job.settings),
        num_keyframes=job.settings.num_keyframes,
        keyframe_mode=job.settings.keyframe_mode,
        postprocess=job.settings.postprocess,
        postprocess_options=dict(job.settings.postprocess_options),
        image_size=job.settings.image_size,
        view_names=view_names,
        return_raw=job.settings.raw,
    )
    return ScenePrediction(recon, device, _load_token(predictor), time.perf_counter() - started)


def commit_prediction(job: BatchJob, plan: ScenePlan, prediction: ScenePrediction) -> dict[str, Any]:
    """The host half: export the prediction and its manifest into OUT/<scene>/ in one commit."""
    started = time.perf_counter()
    recon = prediction.reconstruction

    def fill(folder: Path) -> None:
        export_reconstruction(recon, folder, _export_options(job.settings))
        seconds = prediction.seconds + time.perf_counter() - started
        _manifest(job, plan, recon, prediction.device, seconds).write(folder)

    BatchOutput(job.out).commit(plan.scene.scene_id, fill)
    return {
        "scene_id": plan.scene.scene_id,
        "views": recon.num_views,
        "segments": len(recon.segments),
        "seconds": prediction.seconds + time.perf_counter() - started,
        "predict_seconds": prediction.seconds,
        "finished_at": time.time(),  # when it was committed: the rate of a worker's scenes (benchmark)
        "device": prediction.device,
        "predictor": prediction.predictor,
    }


# One token per loaded model (an id() can be reused once an older model is freed): which load served a
# scene, equal for the scenes one worker predicted with one load.
_LOAD_TOKENS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _load_token(predictor) -> str:
    return _LOAD_TOKENS.setdefault(predictor, f"{os.getpid()}:{uuid.uuid4().hex[:12]}")


def _class_embeddings(settings: PredictionSettings) -> np.ndarray | None:
    if settings.class_embeddings is None:
        return None
    return np.load(settings.class_embeddings, allow_pickle=False)


def _export_options(settings: PredictionSettings) -> ExportOptions:
    return ExportOptions(
        raw=settings.raw,
        min_confidence=settings.min_confidence,
        max_points=settings.max_points,
        class_sets=tuple(settings.class_sets),
    )


def _manifest(job: BatchJob, plan: ScenePlan, recon, device: str, seconds: float) -> SceneManifest:
    return SceneManifest(
        scene_id=plan.scene.scene_id,
        source_kind=plan.scene.kind,
        source=plan.scene.source,
        prediction_key=plan.prediction_key,
        checkpoint=str(resolve_weights(job.checkpoint).resolve()),
        checkpoint_hash=job.identity.checkpoint_hash,
        settings=job.identity.settings,
        input_digest=plan.input_digest,
        num_views=recon.num_views,
        num_segments=len(recon.segments),
        seconds=round(seconds, 3),
        device=device,
        predicted_at=utc_now(),
    )
