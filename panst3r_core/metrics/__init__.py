"""Panoptic quality: COCO panopticapi semantics (`coco_pq`) and the Panoptic Lifting scene protocol
(`scene_pq`), both returning the panopticapi-shaped `PQResult`."""

from panst3r_core.metrics.coco_pq import PanopticImage, Segment, coco_pq, coco_pq_stats
from panst3r_core.metrics.pq_stats import ClassStats, PQStats
from panst3r_core.metrics.result import ClassScore, GroupScore, PQResult
from panst3r_core.metrics.scene_pq import SceneInput, ScenePQOptions, scene_pq, scene_pq_single

__all__ = [
    "ClassScore",
    "ClassStats",
    "GroupScore",
    "PQResult",
    "PQStats",
    "PanopticImage",
    "SceneInput",
    "ScenePQOptions",
    "Segment",
    "coco_pq",
    "coco_pq_stats",
    "scene_pq",
    "scene_pq_single",
]
