"""Per-image PQ with exactly the rules of COCO panopticapi's `pq_compute`.

Per image: a GT and a predicted segment match when they have the same category, the GT segment is not
crowd, and IoU > 0.5 (strict), with IoU = inter / (area_pred + area_gt - inter - |pred on GT void|),
area_gt taken from the GT segment info (the JSON `area` field), area_pred counted from the map. Unmatched
non-crowd GT segments are false negatives; an unmatched prediction is a false positive unless more than
half of it lies on GT void plus the (single remembered) GT crowd segment of its category. Statistics are
summed over all images before averaging. Stuff is not merged; void is id 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from panst3r_core.metrics.pairs import dense_labels, pair_counts
from panst3r_core.metrics.pq_stats import PQStats, average_coco
from panst3r_core.metrics.result import PQResult

VOID_ID = 0


@dataclass(frozen=True)
class Segment:
    """One entry of a COCO panoptic `segments_info` list."""

    id: int
    category_id: int
    iscrowd: bool = False
    area: int | None = None
    """Pixel area; required for GT segments (panopticapi takes the GT area from the JSON)."""


@dataclass
class PanopticImage:
    """An (H, W) integer segment-id map (0 = void) with its segment infos."""

    ids: np.ndarray
    segments: list[Segment]
    image_id: Any = None
    """Used in error messages only."""


class PanopticFormatError(ValueError, KeyError):
    """An inconsistency between a map and its segment infos (panopticapi raises KeyError for these)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def check_prediction(
    pred: PanopticImage, categories: Mapping[int, bool], labels: np.ndarray | None = None
) -> None:
    """panopticapi's sanity checks: map ids and segment infos agree, and every category is known."""
    if labels is None:
        labels = dense_labels(pred.ids)[0]
    segments = {segment.id for segment in pred.segments}
    in_map = {int(label) for label in labels if label != VOID_ID}
    missing_in_json = sorted(in_map - segments)
    if missing_in_json:
        raise PanopticFormatError(
            f"image {pred.image_id}: segment id(s) {missing_in_json} are in the prediction PNG but not in its "
            "segments_info; add them to the JSON or set those pixels to 0 (void)"
        )
    missing_in_map = sorted(segments - in_map)
    if missing_in_map:
        raise PanopticFormatError(
            f"image {pred.image_id}: segment id(s) {missing_in_map} are in the prediction segments_info but "
            "not in its PNG; remove them from the JSON"
        )
    unknown = sorted({s.category_id for s in pred.segments if s.category_id not in categories})
    if unknown:
        raise PanopticFormatError(
            f"image {pred.image_id}: prediction category_id(s) {unknown} are not in the GT categories "
            f"({sorted(categories)})"
        )


def coco_pq_stats(gt: PanopticImage, pred: PanopticImage, categories: Mapping[int, bool]) -> PQStats:
    """tp / fp / fn / IoU sums of one image pair. `categories`: category id -> isthing."""
    if gt.ids.shape != pred.ids.shape:
        raise ValueError(
            f"image {gt.image_id}: GT map {gt.ids.shape} and prediction map {pred.ids.shape} differ in shape"
        )
    pred_labels, pred_index, pred_areas = dense_labels(pred.ids)
    check_prediction(pred, categories, pred_labels)
    gt_labels, gt_index, _ = dense_labels(gt.ids)
    gt_pos, pred_pos, intersections = pair_counts(gt_index, len(gt_labels), pred_index, len(pred_labels))
    gt_of_pair, pred_of_pair = gt_labels[gt_pos], pred_labels[pred_pos]

    gt_segments = {segment.id: segment for segment in gt.segments}  # the last entry wins, as a dict does
    pred_segments = {segment.id: segment for segment in pred.segments}
    pred_area = dict(zip(pred_labels.tolist(), pred_areas.tolist()))
    on_gt_void = intersections[gt_of_pair == VOID_ID]
    void_overlap = dict(zip(pred_of_pair[gt_of_pair == VOID_ID].tolist(), on_gt_void.tolist()))

    stats = PQStats()
    gt_matched, pred_matched = set(), set()
    for gt_id, pred_id, intersection in zip(
        gt_of_pair.tolist(), pred_of_pair.tolist(), intersections.tolist()
    ):
        gt_segment, pred_segment = gt_segments.get(gt_id), pred_segments.get(pred_id)
        if gt_segment is None or pred_segment is None or gt_segment.iscrowd:
            continue
        if gt_segment.category_id != pred_segment.category_id:
            continue
        if gt_segment.area is None:
            raise PanopticFormatError(f"image {gt.image_id}: GT segment {gt_id} has no `area`")
        union = pred_area[pred_id] + gt_segment.area - intersection - void_overlap.get(pred_id, 0)
        if union <= 0:
            raise PanopticFormatError(
                f"image {gt.image_id}: GT segment {gt_id} has area {gt_segment.area} in its segments_info but "
                f"overlaps {intersection} pixels of prediction {pred_id}; fix the GT `area` field"
            )
        iou = intersection / union
        if iou > 0.5:
            stats.add_true_positives([gt_segment.category_id], [iou])
            gt_matched.add(gt_id)
            pred_matched.add(pred_id)

    crowd_of_category: dict[int, int] = {}
    for gt_id, segment in gt_segments.items():
        if gt_id in gt_matched:
            continue
        if segment.iscrowd:
            crowd_of_category[segment.category_id] = gt_id  # only one crowd region per category is kept
            continue
        stats.add_false_negatives([segment.category_id])

    pair_overlap = {
        (g, p): c for g, p, c in zip(gt_of_pair.tolist(), pred_of_pair.tolist(), intersections.tolist())
    }
    for pred_id, segment in pred_segments.items():
        if pred_id in pred_matched:
            continue
        ignored = void_overlap.get(pred_id, 0)
        crowd = crowd_of_category.get(segment.category_id)
        if crowd is not None:
            ignored += pair_overlap.get((crowd, pred_id), 0)
        if ignored / pred_area[pred_id] > 0.5:
            continue
        stats.add_false_positives([segment.category_id])
    return stats


def coco_pq(pairs: Iterable[tuple[PanopticImage, PanopticImage]], categories: Mapping[int, bool]) -> PQResult:
    """Dataset PQ over (GT, prediction) image pairs; `categories`: category id -> isthing, report order."""
    total = PQStats()
    for gt, pred in pairs:
        total += coco_pq_stats(gt, pred, categories)
    return average_coco(total, categories)
