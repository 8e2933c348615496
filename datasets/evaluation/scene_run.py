"""Evaluate one configuration on one store scene: read the views, predict, align, score.

The unit of work of a sweep (`datasets.evaluation.sweep`); it takes a loaded `Predictor` so that a sweep
loads each checkpoint once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from datasets.evaluation.label_maps import EvalVocabulary, align_to_gt, gt_label_maps, prediction_label_maps
from datasets.evaluation.scene_scores import SceneScores, ViewMaps, score_scene
from datasets.evaluation.visualize import comparison_grid, matched_colors
from datasets.store.reader import StoreReader
from panst3r_core.metrics.scene_pq import ScenePQOptions
from panst3r_core.postprocess.spec import PostprocessSpec
from panst3r_core.predictor import Predictor

QUERY_VOCABULARIES = ("store", "checkpoint")
OWN_STAGES = ("postprocess", "to_cpu")
"""Stages of a prediction that each post-processing of a shared inference runs for itself."""


@dataclass(frozen=True)
class EvalSettings:
    """One configuration of a sweep (besides the checkpoint)."""

    postprocess: str = "standard_v2"
    """Post-processor name (panst3r_core.postprocess registry), optionally with option overrides
    (`standard_v2:mask_threshold=0.0`, `panst3r_core.postprocess.spec`)."""
    keyframes: int | None = None
    """Keyframes of the memory and the query decoding; None = all views (up to the predictor's cap)."""
    max_views: int | None = None
    """Evaluate at most this many views per scene, evenly spread over the frame order; None = all."""
    image_size: int = 512
    """Long side of the network input."""
    query_vocabulary: str = "store"
    """Class names the model is queried with: the store's categories or the checkpoint's training names
    (predictions are mapped to the store's classes by name either way)."""
    seed: int = 0
    """Seed of stochastic post-processing (QUBO)."""

    def validate(self) -> None:
        if self.keyframes is not None and self.keyframes < 1:
            raise ValueError(f"keyframes must be >= 1 (or None for all views), got {self.keyframes}")
        if self.max_views is not None and self.max_views < 1:
            raise ValueError(f"max_views must be >= 1 (or None for all views), got {self.max_views}")
        if self.query_vocabulary not in QUERY_VOCABULARIES:
            raise ValueError(
                f"query_vocabulary {self.query_vocabulary!r} is not one of {', '.join(QUERY_VOCABULARIES)}"
            )


def view_indices(num_frames: int, max_views: int | None) -> list[int]:
    """All frames, or `max_views` of them evenly spread (first and last included)."""
    if max_views is None or max_views >= num_frames:
        return list(range(num_frames))
    return sorted({int(round(x)) for x in np.linspace(0, num_frames - 1, max_views)})


def evaluate_scene(
    predictor: Predictor,
    reader: StoreReader,
    scene_id: str,
    settings: EvalSettings,
    vocabulary: EvalVocabulary,
    visual_views: int = 0,
    options: ScenePQOptions = ScenePQOptions(),
) -> tuple[SceneScores, np.ndarray | None]:
    """Scores of one scene (extras: seconds, views, inference stage timings) and, when `visual_views` > 0,
    an (H, W, 3) uint8 picture of that many views (image | GT | prediction). Store ids are split into
    instance and class with the store's own `cls_sep`."""
    return evaluate_scene_postprocessings(
        predictor, reader, scene_id, [settings], vocabulary, visual_views, options
    )[0]


def shared_inference_key(settings: EvalSettings) -> EvalSettings:
    """Settings that give the same inference: all of a configuration's but its post-processing."""
    return replace(settings, postprocess="")


def evaluate_scene_postprocessings(
    predictor: Predictor,
    reader: StoreReader,
    scene_id: str,
    settings: Sequence[EvalSettings],
    vocabulary: EvalVocabulary,
    visual_views: int = 0,
    options: ScenePQOptions = ScenePQOptions(),
) -> list[tuple[SceneScores, np.ndarray | None]]:
    """`evaluate_scene` for settings that differ only in their post-processing: the views are read and the
    inference runs once, then each post-processing is scored. A result's seconds are the shared stages plus
    its own post-processing (what predicting with it alone takes)."""
    if len({shared_inference_key(s) for s in settings}) != 1:
        raise ValueError("settings evaluated together may differ only in their post-processing")
    first = settings[0]
    cls_sep = reader.cls_sep()
    indices = view_indices(reader.num_frames(scene_id), first.max_views)
    frames = [reader.read_frame(scene_id, i) for i in indices]
    query = list(vocabulary.names) if first.query_vocabulary == "store" else None
    specs = [PostprocessSpec.parse(s.postprocess) for s in settings]
    started = time.perf_counter()
    recons = predictor.predict_postprocessings(
        [frame["image"] for frame in frames],
        [(spec.name, spec.option_dict() or None) for spec in specs],
        class_names=query,
        num_keyframes=first.keyframes,
        image_size=first.image_size,
        view_names=[frame["name"] for frame in frames],
        seed=first.seed,
    )
    wall = time.perf_counter() - started
    own = [sum(r.timings.get(stage, 0.0) for stage in OWN_STAGES) for r in recons]
    return [
        _scored(scene_id, frames, recon, wall - (sum(own) - mine), cls_sep, vocabulary, visual_views, options)
        for recon, mine in zip(recons, own)
    ]


def _scored(scene_id, frames, recon, seconds, cls_sep, vocabulary, visual_views, options):
    """(scores, picture) of one reconstruction of the scene's frames."""
    segment_ids = [segment.id for segment in recon.segments]
    segment_names = [segment.class_name for segment in recon.segments]
    views = []
    for frame, predicted in zip(frames, recon.panoptic):
        gt_class, gt_instance = gt_label_maps(frame["panoptic"], cls_sep, vocabulary)
        pred_class, pred_instance = prediction_label_maps(predicted, segment_ids, segment_names, vocabulary)
        (gt_class, gt_instance), (pred_class, pred_instance) = align_to_gt(
            [gt_class, gt_instance], [pred_class, pred_instance]
        )
        views.append(ViewMaps(gt_class, gt_instance, pred_class, pred_instance))
    scores = score_scene(scene_id, views, vocabulary, options)
    scores.extra = {
        "seconds": seconds,
        **{f"seconds_{stage}": value for stage, value in recon.timings.items()},
    }
    picture = _picture(scene_id, frames, recon, views, visual_views) if visual_views > 0 else None
    return scores, picture


def _picture(scene_id, frames, recon, views: list[ViewMaps], count: int) -> np.ndarray:
    """Image | GT | prediction of `count` views spread over the scene, matched segments in equal colours."""
    shown = view_indices(len(views), count)
    colors = [matched_colors(v.gt_class, v.gt_instance, v.pred_class, v.pred_instance) for v in views]
    return comparison_grid(
        [recon.images[i] for i in shown],
        [colors[i][0] for i in shown],
        [colors[i][1] for i in shown],
        [f"{scene_id} / {frames[i]['name']}" for i in shown],
    )
