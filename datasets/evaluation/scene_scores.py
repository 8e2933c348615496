"""PQ of one evaluated scene in both modes, their aggregation over scenes, and the result tables.

scene mode: the Panoptic Lifting protocol (`panst3r_core.metrics.scene_pq`), one matching over all views.
coco mode: panopticapi per image (`panst3r_core.metrics.coco_pq`), with stuff merged into one segment per
class and void id 0 for void and unknown classes (scene_pq_protocol.md, "Per-image COCO PQ"); the stats
of every image of every scene are summed before averaging.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from datasets.evaluation.label_maps import VOID_CLASS, EvalVocabulary
from panst3r_core.metrics.coco_pq import PanopticImage, Segment, coco_pq_stats
from panst3r_core.metrics.pq_stats import PQStats, average_coco
from panst3r_core.metrics.result import PQResult
from panst3r_core.metrics.scene_pq import SceneInput, ScenePQOptions, mean_of_results, scene_pq_single


@dataclass
class ViewMaps:
    """One view on a common grid: GT and predicted evaluation classes and instance ids, (H, W) int64."""

    gt_class: np.ndarray
    gt_instance: np.ndarray
    pred_class: np.ndarray
    pred_instance: np.ndarray


@dataclass
class SceneScores:
    scene_id: str
    num_views: int
    scene: PQResult
    """Scene-mode PQ of this scene."""
    coco_stats: PQStats
    """tp / fp / fn / IoU sums of this scene's images (summed over scenes for the dataset score)."""
    coco: PQResult
    """COCO-mode PQ over this scene's images alone."""
    extra: dict[str, float] = field(default_factory=dict)
    """Anything the caller measured for the scene (seconds, memory)."""


def coco_image(classes: np.ndarray, instances: np.ndarray, things: set[int], image_id: str) -> PanopticImage:
    """(H, W) evaluation classes and instances -> a COCO panoptic image: one segment per (thing class,
    instance) and per stuff class, ids 1..K in (class, instance) order, void (id 0) for the void class and
    for classes that are neither things nor stuff of the vocabulary (negative ids)."""
    classes = np.asarray(classes, dtype=np.int64)
    instances = np.where(np.isin(classes, list(things)), np.asarray(instances, dtype=np.int64), 0)
    valid = classes > VOID_CLASS
    ids = np.zeros(classes.shape, dtype=np.int64)
    if not valid.any():
        return PanopticImage(ids=ids, segments=[], image_id=image_id)
    keys = classes[valid] * (int(instances[valid].max()) + 1) + instances[valid]
    unique, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    ids[valid] = inverse.ravel() + 1
    first = np.zeros(len(unique), dtype=np.int64)
    first[inverse.ravel()] = np.flatnonzero(valid.ravel())
    segment_classes = classes.ravel()[first]
    segments = [
        Segment(id=k + 1, category_id=int(segment_classes[k]), iscrowd=False, area=int(counts[k]))
        for k in range(len(unique))
    ]
    return PanopticImage(ids=ids, segments=segments, image_id=image_id)


def score_scene(
    scene_id: str,
    views: Sequence[ViewMaps],
    vocabulary: EvalVocabulary,
    options: ScenePQOptions = ScenePQOptions(),
) -> SceneScores:
    """Both PQ modes of one scene. Classes unknown to the vocabulary must already be negative."""
    if not views:
        raise ValueError(f"scene {scene_id!r} has no views to evaluate")
    things = vocabulary.things
    categories = vocabulary.categories()
    # void is a stuff class of its own, as Panoptic Lifting's class 0 (only predictions carry it: GT void
    # pixels are deleted)
    scene = scene_pq_single(
        SceneInput(
            gt_class=[v.gt_class for v in views],
            gt_instance=[v.gt_instance for v in views],
            pred_class=[v.pred_class for v in views],
            pred_instance=[v.pred_instance for v in views],
            name=scene_id,
        ),
        things,
        vocabulary.stuff | {VOID_CLASS},
        options,
    )
    stats = PQStats()
    for index, view in enumerate(views):
        image_id = f"{scene_id}/{index}"
        gt_image = coco_image(view.gt_class, view.gt_instance, things, image_id)
        pred_image = coco_image(view.pred_class, view.pred_instance, things, image_id)
        stats += coco_pq_stats(gt_image, pred_image, categories)
    return SceneScores(scene_id, len(views), scene, stats, average_coco(stats, categories))


@dataclass
class DatasetScores:
    scene: PQResult
    coco: PQResult
    coco_stats: PQStats
    scenes: list[SceneScores]


def aggregate(scenes: Sequence[SceneScores], vocabulary: EvalVocabulary) -> DatasetScores:
    """Scene mode: mean over scenes. COCO mode: stats summed over every image, then averaged."""
    if not scenes:
        raise ValueError("no scenes were evaluated; check the split and the store")
    total = PQStats()
    for scores in scenes:
        total += scores.coco_stats
    per_scene = {s.scene_id: s.scene for s in scenes}
    return DatasetScores(
        # the scene protocol's dataset score, computed as `scene_pq.scene_pq` does
        scene=mean_of_results(list(per_scene.values()), per_scene),
        coco=average_coco(total, vocabulary.categories()),
        coco_stats=total,
        scenes=list(scenes),
    )


def summary_metrics(scores: DatasetScores) -> dict[str, float]:
    """Flat metrics: PQ, SQ, RQ, PQ_th, SQ_th, RQ_th, PQ_st, ... (scene mode) and the same with `coco_`;
    groups without a value (no class counted) are left out rather than logged as 0."""
    metrics: dict[str, float] = {}
    for prefix, result in (("", scores.scene), ("coco_", scores.coco)):
        for suffix, group in (("", result.all), ("_th", result.things), ("_st", result.stuff)):
            for name, value in (("PQ", group.pq), ("SQ", group.sq), ("RQ", group.rq)):
                if value is not None:
                    metrics[f"{prefix}{name}{suffix}"] = float(value)
    return metrics


def per_scene_rows(scores: DatasetScores) -> list[dict]:
    """One row per scene: both modes' PQ / SQ / RQ (overall, things, stuff) and the caller's extras."""
    rows = []
    for scene in scores.scenes:
        row: dict = {"scene_id": scene.scene_id, "views": scene.num_views}
        for prefix, result in (("", scene.scene), ("coco_", scene.coco)):
            for suffix, group in (("", result.all), ("_th", result.things), ("_st", result.stuff)):
                row[f"{prefix}PQ{suffix}"] = group.pq
                if suffix == "":
                    row[f"{prefix}SQ"] = group.sq
                    row[f"{prefix}RQ"] = group.rq
        row.update(scene.extra)
        rows.append(row)
    return rows


def per_class_rows(scores: DatasetScores, vocabulary: EvalVocabulary) -> list[dict]:
    """One row per class of the vocabulary that either mode scored: scene-mode PQ/SQ/RQ (mean over the
    scenes that kept the class, `scenes` of them, `scenes_matched` of which matched at least one of its
    segments) and COCO-mode PQ/SQ/RQ with its TP/FP/FN counts."""
    scene_counts: dict[int, int] = {}
    matched_counts: dict[int, int] = {}
    for scene in scores.scenes:
        for category, score in scene.scene.per_class.items():
            scene_counts[category] = scene_counts.get(category, 0) + 1
            matched_counts[category] = matched_counts.get(category, 0) + int(score.rq > 0)
    rows = []
    # predicted void is a stuff class of its own in scene mode (Panoptic Lifting's class 0); when kept it
    # enters the mean, so it gets a row too
    categories = {VOID_CLASS: False, **vocabulary.categories()}
    for category, isthing in categories.items():
        scene_score = scores.scene.per_class.get(category)
        stats = scores.coco_stats.per_class.get(category)
        if scene_score is None and (stats is None or not stats.counted):
            continue
        coco_score = scores.coco.per_class.get(category)
        rows.append(
            {
                "class_id": category - 1,  # the store's id; -1 for void
                "class_name": vocabulary.name_of(category),
                "isthing": isthing,
                "PQ": scene_score.pq if scene_score else None,
                "SQ": scene_score.sq if scene_score else None,
                "RQ": scene_score.rq if scene_score else None,
                "scenes": scene_counts.get(category, 0),
                "scenes_matched": matched_counts.get(category, 0),
                "coco_PQ": coco_score.pq if stats is not None and stats.counted else None,
                "coco_SQ": coco_score.sq if stats is not None and stats.counted else None,
                "coco_RQ": coco_score.rq if stats is not None and stats.counted else None,
                "coco_TP": stats.tp if stats else 0,
                "coco_FP": stats.fp if stats else 0,
                "coco_FN": stats.fn if stats else 0,
            }
        )
    return rows
