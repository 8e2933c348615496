"""Store ground truth and predicted segments -> per-pixel evaluation classes and instance ids.

Evaluation class ids are the store's category ids shifted by one, so that 0 is free for void and plays the
role of Panoptic Lifting's class 0 (GT void pixels are deleted, predicted void is a stuff class of its
own). Predictions are mapped to the store vocabulary by class name, since a model may be queried with any
vocabulary; a predicted name the store does not know becomes `UNKNOWN_CLASS` (void colour in scene mode,
void id 0 in COCO mode).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from panst3r_core.inference.images import centre_crop_box
from panst3r_core.metrics.scene_pq import resize_nearest

VOID_CLASS = 0
"""Evaluation class of void pixels (GT panoptic id 0, predicted id 0)."""
UNKNOWN_CLASS = -1
"""Evaluation class of pixels whose class the store vocabulary does not hold."""


@dataclass(frozen=True)
class EvalVocabulary:
    """The store's class list; evaluation class id = store category id + 1."""

    names: tuple[str, ...]
    """Class names indexed by store category id."""
    isthing: tuple[bool, ...]

    @classmethod
    def from_categories(cls, categories: Sequence[dict], where: str | Path = "store") -> EvalVocabulary:
        """From the store's `[{id, name, isthing}]`; ids must be 0..K-1 (the panoptic ids hold them)."""
        if not categories:
            raise ValueError(
                f"{where} records no class categories (root attrs `categories`); re-run `panst3r preprocess`"
            )
        by_id = {int(c["id"]): c for c in categories}
        if sorted(by_id) != list(range(len(by_id))):
            raise ValueError(f"{where}: category ids {sorted(by_id)[:10]}... are not 0..{len(by_id) - 1}")
        names = tuple(str(by_id[i]["name"]) for i in range(len(by_id)))
        if len(set(names)) != len(names):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"{where}: category names {duplicates} appear twice; predictions map by name")
        return cls(names, tuple(bool(by_id[i].get("isthing", False)) for i in range(len(by_id))))

    @property
    def things(self) -> set[int]:
        return {i + 1 for i, thing in enumerate(self.isthing) if thing}

    @property
    def stuff(self) -> set[int]:
        """Stuff classes of the store (without the void class)."""
        return {i + 1 for i, thing in enumerate(self.isthing) if not thing}

    def categories(self) -> dict[int, bool]:
        """Evaluation class id -> isthing, in id order (the COCO categories)."""
        return {i + 1: thing for i, thing in enumerate(self.isthing)}

    def name_of(self, eval_class: int) -> str:
        if eval_class == VOID_CLASS:
            return "void"
        if 1 <= eval_class <= len(self.names):
            return self.names[eval_class - 1]
        return "unknown"

    def eval_classes_for(self, names: Sequence[str]) -> np.ndarray:
        """(N,) int64 evaluation class of each name (UNKNOWN_CLASS for names outside the vocabulary)."""
        lookup = {name: i + 1 for i, name in enumerate(self.names)}
        return np.array([lookup.get(str(name), UNKNOWN_CLASS) for name in names], dtype=np.int64)


def gt_label_maps(
    panoptic: np.ndarray, cls_sep: int, vocabulary: EvalVocabulary
) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) store ids `instance * cls_sep + class` (0 = void) -> (class, instance), both (H, W) int64.

    Void gets (VOID_CLASS, 0); a class id beyond the vocabulary gets UNKNOWN_CLASS."""
    ids = np.asarray(panoptic).astype(np.int64)
    classes = ids % cls_sep + 1
    instances = ids // cls_sep
    classes[classes > len(vocabulary.names)] = UNKNOWN_CLASS
    void = ids == 0
    classes[void] = VOID_CLASS
    instances[void] = 0
    return classes, instances


def prediction_label_maps(
    segment_ids: np.ndarray,
    segment_table: Sequence[int],
    segment_names: Sequence[str],
    vocabulary: EvalVocabulary,
) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) predicted segment ids (0 = void) + each segment's class name -> (class, instance) (H, W) int64.

    The segment id is the instance id: it is shared by all views of a scene, which the scene protocol
    scores. An id missing from `segment_table` counts as void."""
    ids = np.asarray(segment_ids).astype(np.int64)
    table = np.asarray(segment_table, dtype=np.int64)
    classes_of_segments = vocabulary.eval_classes_for(segment_names)
    classes = np.full(ids.shape, VOID_CLASS, dtype=np.int64)
    if table.size:
        order = np.argsort(table)
        sorted_ids = table[order]
        position = np.clip(np.searchsorted(sorted_ids, ids), 0, sorted_ids.size - 1)
        listed = (sorted_ids[position] == ids) & (ids != 0)
        classes = np.where(listed, classes_of_segments[order][position], VOID_CLASS)
    else:
        listed = np.zeros(ids.shape, dtype=bool)
    instances = np.where(listed, ids, 0)
    return classes, instances


def crop_box(gt_shape: tuple[int, int], pred_shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the GT region a prediction of `pred_shape` covers: the predictor
    centre-crops a view to the network's aspect ratio before resizing (same rule, same function)."""
    return centre_crop_box(tuple(gt_shape), tuple(pred_shape))


def align_to_gt(
    gt_maps: Sequence[np.ndarray], pred_maps: Sequence[np.ndarray]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Bring one view's GT and predicted maps to one grid: the GT is cropped to the region the network saw
    and the prediction is resized to that region with nearest neighbour (evaluation at GT resolution)."""
    gt_shape = np.asarray(gt_maps[0]).shape
    pred_shape = np.asarray(pred_maps[0]).shape
    top, left, crop_h, crop_w = crop_box(gt_shape, pred_shape)
    gt_out = [np.asarray(m)[top : top + crop_h, left : left + crop_w] for m in gt_maps]
    if pred_shape == (crop_h, crop_w):
        return gt_out, [np.asarray(m) for m in pred_maps]
    return gt_out, [resize_nearest(np.asarray(m), (crop_w, crop_h)) for m in pred_maps]
