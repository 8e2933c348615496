"""Both PQ modes of evaluated scenes, on hand-computed cases where the modes agree and where they differ."""

from __future__ import annotations

import numpy as np
import pytest

from datasets.evaluation.label_maps import UNKNOWN_CLASS, EvalVocabulary
from datasets.evaluation.scene_scores import (
    ViewMaps,
    aggregate,
    coco_image,
    per_class_rows,
    per_scene_rows,
    score_scene,
    summary_metrics,
)

WALL, FLOOR, CHAIR, TABLE = 1, 2, 3, 4  # evaluation ids (store id + 1)
VOCABULARY = EvalVocabulary(("wall", "floor", "chair", "table"), (False, False, True, True))


def _view(gt_class, gt_instance, pred_class, pred_instance) -> ViewMaps:
    return ViewMaps(
        *(np.asarray(a, dtype=np.int64) for a in (gt_class, gt_instance, pred_class, pred_instance))
    )


def _chair_left_half(chair_id: int) -> tuple[np.ndarray, ...]:
    """4 x 4 view: a chair on the two left columns, wall on the right; GT chair instance 1."""
    gt_class = np.full((4, 4), WALL)
    gt_class[:, :2] = CHAIR
    gt_instance = np.where(gt_class == CHAIR, 1, 7)
    pred_instance = np.where(gt_class == CHAIR, chair_id, 3)
    return gt_class, gt_instance, gt_class.copy(), pred_instance


def test_a_perfect_prediction_scores_one_in_both_modes():
    views = [_view(*_chair_left_half(5)), _view(*_chair_left_half(5))]
    scores = score_scene("s", views, VOCABULARY)
    assert scores.scene.all.pq == pytest.approx(1.0)
    assert scores.coco.all.pq == pytest.approx(1.0)
    assert scores.scene.all.n == 2 and scores.num_views == 2  # n: the kept classes, wall and chair


def test_ids_that_change_between_views_fail_scene_pq_but_not_per_image_pq():
    # the chair is predicted with id 5 in view 0 and id 6 in view 1: every image is perfect, but over the
    # scene each predicted chair covers half the GT chair (IoU 0.5, not > 0.5): 1 FN + 2 FP
    views = [_view(*_chair_left_half(5)), _view(*_chair_left_half(6))]
    scores = score_scene("s", views, VOCABULARY)
    assert scores.coco.all.pq == pytest.approx(1.0)
    assert scores.coco_stats[CHAIR].tp == 2
    # kept classes: wall (PQ 1) and chair (PQ 0); unused floor, table and void are removed
    assert scores.scene.all.pq == pytest.approx(0.5)
    assert scores.scene.things.pq == pytest.approx(0.0)
    assert scores.scene.stuff.pq == pytest.approx(1.0)
    assert sorted(scores.scene.per_class) == [WALL, CHAIR]


def test_coco_mode_merges_stuff_instances_into_one_segment_per_class():
    gt_class = np.full((4, 4), WALL)
    gt_instance = np.where(np.arange(4)[None, :] < 2, 1, 2).repeat(4, axis=0)  # two wall pieces
    view = _view(gt_class, gt_instance, gt_class, np.full((4, 4), 9))
    scores = score_scene("s", [view], VOCABULARY)
    assert scores.coco_stats[WALL].tp == 1 and scores.coco_stats[WALL].fn == 0
    assert scores.coco.all.pq == pytest.approx(1.0)


def test_an_unknown_predicted_class_is_void_a_false_negative_only_in_coco_mode():
    gt_class = np.full((4, 4), WALL)
    gt_class[:2, :2] = CHAIR
    gt_instance = np.where(gt_class == CHAIR, 1, 0)
    pred_class = np.where(gt_class == CHAIR, UNKNOWN_CLASS, WALL)
    pred_instance = np.where(gt_class == CHAIR, 4, 2)
    scores = score_scene("s", [_view(gt_class, gt_instance, pred_class, pred_instance)], VOCABULARY)
    assert scores.coco_stats[CHAIR].fn == 1  # panopticapi: an unmatched GT segment is always an FN
    assert scores.coco.all.pq == pytest.approx(0.5)
    # scene mode: the chair is over half predicted void, so it is no FN, but as a kept class it adds 0
    assert scores.scene.per_class[CHAIR].pq == 0.0
    assert scores.scene.all.pq == pytest.approx(0.5)


def test_coco_image_gives_dense_ids_true_areas_and_void():
    classes = np.array([[WALL, WALL, 0], [CHAIR, CHAIR, UNKNOWN_CLASS], [CHAIR, TABLE, WALL]])
    instances = np.array([[3, 4, 0], [2, 2, 9], [5, 1, 8]])
    image = coco_image(classes, instances, VOCABULARY.things, "v")
    by_id = {s.id: s for s in image.segments}
    assert sorted(by_id) == list(range(1, len(by_id) + 1))
    areas = sorted((s.category_id, s.area) for s in image.segments)
    # wall merged (3 px), chair instances 2 (2 px) and 5 (1 px), table (1 px)
    assert areas == [(WALL, 3), (CHAIR, 1), (CHAIR, 2), (TABLE, 1)]
    assert image.ids[0, 2] == 0 and image.ids[1, 2] == 0
    for segment in image.segments:
        assert (image.ids == segment.id).sum() == segment.area


def test_dataset_scores_average_scenes_and_sum_coco_statistics():
    perfect = score_scene("a", [_view(*_chair_left_half(5))] * 2, VOCABULARY)
    split_ids = score_scene("b", [_view(*_chair_left_half(5)), _view(*_chair_left_half(6))], VOCABULARY)
    perfect.extra = {"seconds": 2.0}
    split_ids.extra = {"seconds": 4.0}
    dataset = aggregate([perfect, split_ids], VOCABULARY)
    assert dataset.scene.all.pq == pytest.approx(0.75)
    assert dataset.scene.per_class[CHAIR].pq == pytest.approx(0.5)
    assert dataset.coco_stats[CHAIR].tp == 4 and dataset.coco.all.pq == pytest.approx(1.0)
    metrics = summary_metrics(dataset)
    assert metrics["PQ"] == pytest.approx(0.75) and metrics["PQ_th"] == pytest.approx(0.5)
    assert metrics["PQ_st"] == pytest.approx(1.0) and metrics["coco_PQ"] == pytest.approx(1.0)
    rows = per_scene_rows(dataset)
    assert [(r["scene_id"], r["PQ"], r["seconds"]) for r in rows] == [("a", 1.0, 2.0), ("b", 0.5, 4.0)]
    classes = {r["class_name"]: r for r in per_class_rows(dataset, VOCABULARY)}
    assert sorted(classes) == ["chair", "wall"]
    assert classes["chair"]["scenes"] == 2 and classes["chair"]["coco_TP"] == 4
    # kept in both scenes, matched only where its ids agree across views
    assert classes["chair"]["scenes_matched"] == 1 and classes["wall"]["scenes_matched"] == 2
    assert classes["chair"]["isthing"] and classes["wall"]["class_id"] == 0


def test_no_scenes_is_an_error():
    with pytest.raises(ValueError, match="no scenes"):
        aggregate([], VOCABULARY)


def test_predicted_void_is_a_kept_stuff_class_in_scene_mode_and_gets_a_table_row():
    # the right quarter of the wall is predicted void (class 0): as in Panoptic Lifting, void is a stuff class
    # of its own, not the void colour, so it is kept (25 % of the predicted pixels) and is a false positive
    gt_class = np.full((4, 4), WALL)
    pred_class = np.where(np.arange(4)[None, :] < 3, WALL, 0).repeat(4, axis=0)
    view = _view(gt_class, np.zeros((4, 4)), pred_class, np.where(pred_class == WALL, 3, 0))
    dataset = aggregate([score_scene("s", [view], VOCABULARY)], VOCABULARY)
    assert sorted(dataset.scene.per_class) == [0, WALL]
    # wall: IoU 12 / 16 = 0.75, a true positive; void: PQ 0
    assert dataset.scene.per_class[WALL].pq == pytest.approx(0.75)
    assert dataset.scene.all.pq == pytest.approx(0.375)
    rows = {r["class_name"]: r for r in per_class_rows(dataset, VOCABULARY)}
    assert rows["void"]["class_id"] == -1 and rows["void"]["PQ"] == 0.0
    assert (rows["void"]["scenes"], rows["void"]["scenes_matched"]) == (1, 0)
    assert rows["wall"]["PQ"] == pytest.approx(0.75)
