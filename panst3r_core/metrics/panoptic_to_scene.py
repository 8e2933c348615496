"""COCO panoptic images (id maps + segment infos) -> the (class, instance) maps of the scene protocol.

Void (id 0, or an id missing from the segment infos) becomes class `VOID_CLASS`, which plays the role of
Panoptic Lifting's class 0: GT void pixels are deleted from both sides, and predicted void is a stuff
class of its own (as class 0 is in Panoptic Lifting's class list). The segment id is the instance id, so
a GT or predicted object must keep its id across the views of a scene.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from panst3r_core.metrics.coco_pq import PanopticImage
from panst3r_core.metrics.scene_pq import SceneInput

VOID_CLASS = -1
"""Class of void pixels; never a COCO category id."""
CROWD_VOID_CLASS = -2
"""Class of GT crowd pixels with `crowd_as_void`: not a category, so the void colour (not deleted)."""


def class_map(image: PanopticImage, crowd_as_void: bool = False) -> np.ndarray:
    """(H, W) segment ids -> (H, W) int64 category per pixel (VOID_CLASS for void / unlisted ids)."""
    ids = np.asarray(image.ids).astype(np.int64)
    segment_ids = np.array([s.id for s in image.segments], dtype=np.int64)
    categories = np.array(
        [CROWD_VOID_CLASS if (crowd_as_void and s.iscrowd) else s.category_id for s in image.segments],
        dtype=np.int64,
    )
    if segment_ids.size == 0:
        return np.full(ids.shape, VOID_CLASS, dtype=np.int64)
    order = np.argsort(segment_ids, kind="stable")
    sorted_ids, sorted_categories = segment_ids[order], categories[order]
    position = np.clip(np.searchsorted(sorted_ids, ids), 0, len(sorted_ids) - 1)
    listed = (sorted_ids[position] == ids) & (ids != 0)
    return np.where(listed, sorted_categories[position], VOID_CLASS)


def scene_from_panoptic(
    name: str, pairs: Sequence[tuple[PanopticImage, PanopticImage]], crowd_as_void: bool = False
) -> SceneInput:
    """One scene from its (GT, prediction) image pairs, in view order."""
    return SceneInput(
        gt_class=[class_map(gt, crowd_as_void) for gt, _ in pairs],
        gt_instance=[np.asarray(gt.ids).astype(np.int64) for gt, _ in pairs],
        pred_class=[class_map(pred) for _, pred in pairs],
        pred_instance=[np.asarray(pred.ids).astype(np.int64) for _, pred in pairs],
        name=name,
        extra_stuff=frozenset({VOID_CLASS}),
    )
