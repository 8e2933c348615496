"""Hand-computed cases for every panopticapi rule (1 x N "images"; obj = 1 is a thing, wall = 2 stuff)."""

import numpy as np
import pytest

from panst3r_core.metrics.coco_pq import PanopticFormatError, PanopticImage, Segment, coco_pq, coco_pq_stats

CATEGORIES = {1: True, 2: False}  # obj (thing), wall (stuff)


def _image(ids, segments, image_id=0):
    return PanopticImage(ids=np.array([ids]), segments=segments, image_id=image_id)


def _gt(ids, categories, crowd=()):
    """GT image with areas counted from the map (as a correct JSON holds them)."""
    ids = np.array(ids)
    segments = [
        Segment(id=i, category_id=c, iscrowd=i in crowd, area=int((ids == i).sum()))
        for i, c in categories.items()
    ]
    return _image(ids, segments)


def _pred(ids, categories):
    return _image(np.array(ids), [Segment(id=i, category_id=c) for i, c in categories.items()])


def test_case_A_only_gt_void_leaves_the_union():
    gt = _gt([1, 1, 1, 1, 1, 1, 0, 0, 0, 0], {1: 1})
    pred = _pred([0, 0, 7, 7, 7, 7, 7, 7, 7, 7], {7: 1})
    result = coco_pq([(gt, pred)], CATEGORIES)
    # inter 4, union 8 + 6 - 4 - 4 (pred on GT void) = 6
    assert result.all.pq == pytest.approx(4 / 6)
    assert result.per_class[1].pq == pytest.approx(4 / 6)
    assert result.per_class[2].pq == 0.0 and result.stuff.n == 0 and result.stuff.pq is None


def test_case_B_predicted_void_still_counts_in_the_gt_area():
    gt = _gt([1, 1, 1, 1, 2, 2, 2, 2, 2, 2], {1: 1, 2: 2})
    pred = _pred([0, 0, 0, 5, 6, 6, 6, 6, 6, 6], {5: 1, 6: 2})
    result = coco_pq([(gt, pred)], CATEGORIES)
    assert result.per_class[1].pq == 0.0  # IoU 1/4: FN + FP
    assert result.per_class[2].pq == pytest.approx(1.0)
    assert result.all.pq == pytest.approx(0.5)
    assert result.things.pq == 0.0 and result.stuff.pq == pytest.approx(1.0)
    assert (result.all.n, result.things.n, result.stuff.n) == (2, 1, 1)


def test_case_C_stuff_segments_are_not_merged_and_iou_half_does_not_match():
    gt = _gt([3, 3, 3, 3, 3, 4, 4, 4, 4, 4], {3: 2, 4: 2})
    pred = _pred([9] * 10, {9: 2})
    stats = coco_pq_stats(gt, pred, CATEGORIES)
    assert (stats[2].tp, stats[2].fp, stats[2].fn) == (0, 1, 2)
    result = coco_pq([(gt, pred)], CATEGORIES)
    assert result.all.pq == 0.0 and result.all.n == 1


def test_case_D2_predictions_on_a_crowd_region_are_not_false_positives():
    gt = _gt([5, 5, 5, 5, 1, 1, 1, 1, 0, 0], {5: 1, 1: 1}, crowd={5})
    pred = _pred([2, 2, 2, 2, 0, 3, 3, 3, 0, 0], {2: 1, 3: 1})
    stats = coco_pq_stats(gt, pred, CATEGORIES)
    assert (stats[1].tp, stats[1].fp, stats[1].fn) == (1, 0, 0)
    assert stats[1].iou == pytest.approx(3 / 4)
    assert coco_pq([(gt, pred)], CATEGORIES).all.pq == pytest.approx(0.75)


def test_crowd_of_another_category_does_not_excuse_a_false_positive():
    gt = _gt([5, 5, 5, 5, 1, 1, 1, 1, 0, 0], {5: 2, 1: 1}, crowd={5})  # crowd is wall here
    pred = _pred([2, 2, 2, 2, 0, 3, 3, 3, 0, 0], {2: 1, 3: 1})
    stats = coco_pq_stats(gt, pred, CATEGORIES)
    assert (stats[1].tp, stats[1].fp) == (1, 1)
    assert stats[2].fn == 0  # crowd GT is never a false negative


def test_only_the_last_crowd_segment_of_a_category_is_remembered():
    # two obj crowd regions; the prediction lies on the first one, which is forgotten -> FP
    gt = _gt([5, 5, 5, 6, 6, 6, 0, 0, 0, 0], {5: 1, 6: 1}, crowd={5, 6})
    pred = _pred([2, 2, 2, 0, 0, 0, 0, 0, 0, 0], {2: 1})
    assert coco_pq_stats(gt, pred, CATEGORIES)[1].fp == 1
    pred_on_last = _pred([0, 0, 0, 2, 2, 2, 0, 0, 0, 0], {2: 1})
    assert coco_pq_stats(gt, pred_on_last, CATEGORIES)[1].fp == 0


def test_false_positive_void_rule_is_strictly_more_than_half():
    gt = _gt([0, 0, 1, 1, 1, 1, 1, 1, 1, 1], {1: 2})
    half = _pred([4, 4, 9, 9, 9, 9, 9, 9, 9, 9], {4: 1, 9: 2})  # wall pred IoU ... obj pred: 2/2 on void
    stats = coco_pq_stats(gt, half, CATEGORIES)
    assert stats[1].fp == 0  # 2/2 > 0.5 on void: ignored
    gt2 = _gt([0, 0, 3, 3, 1, 1, 1, 1, 1, 1], {3: 2, 1: 2})
    pred2 = _pred([4, 4, 4, 4, 9, 9, 9, 9, 9, 9], {4: 1, 9: 2})  # obj pred: 2/4 on void = 0.5 -> FP
    assert coco_pq_stats(gt2, pred2, CATEGORIES)[1].fp == 1


def test_gt_area_comes_from_the_segment_info_not_the_map():
    ids = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    pred = _pred([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], {1: 1})
    right = _image(np.array(ids), [Segment(1, 1, False, 4)])
    wrong = _image(np.array(ids), [Segment(1, 1, False, 8)])  # IoU 3 / (3 + 8 - 3) = 0.375
    assert coco_pq([(right, pred)], CATEGORIES).all.pq == pytest.approx(0.75)
    assert coco_pq([(wrong, pred)], CATEGORIES).all.pq == 0.0


def test_statistics_are_summed_over_images_before_averaging():
    good_gt, good_pred = _gt([1] * 10, {1: 1}), _pred([1] * 10, {1: 1})
    bad_gt, bad_pred = _gt([1] * 10, {1: 1}), _pred([0] * 10, {})
    result = coco_pq([(good_gt, good_pred), (bad_gt, bad_pred), (bad_gt, bad_pred)], CATEGORIES)
    # tp 1, fn 2: PQ = 1 / (1 + 1) = 0.5 (per-image averaging would give 1/3)
    assert result.all.pq == pytest.approx(0.5)
    assert result.all.sq == pytest.approx(1.0) and result.all.rq == pytest.approx(0.5)


def test_groups_without_counted_classes_are_missing_not_a_crash():
    result = coco_pq([(_gt([0] * 10, {}), _pred([0] * 10, {}))], CATEGORIES)
    data = result.to_dict()
    assert data["All"] == {"pq": None, "sq": None, "rq": None, "n": 0}
    assert data["per_class"] == {1: {"pq": 0.0, "sq": 0.0, "rq": 0.0}, 2: {"pq": 0.0, "sq": 0.0, "rq": 0.0}}


def test_gt_ids_missing_from_the_json_are_ignored_not_void():
    gt = _image(np.array([1, 1, 1, 1, 8, 8, 8, 8, 0, 0]), [Segment(1, 1, False, 4)])
    pred = _pred([1, 1, 1, 1, 2, 2, 2, 2, 0, 0], {1: 1, 2: 1})
    stats = coco_pq_stats(gt, pred, CATEGORIES)
    # pred 2 lies on the unlisted GT id 8, which is not VOID: it stays a false positive
    assert (stats[1].tp, stats[1].fp) == (1, 1)


def test_prediction_sanity_checks_name_the_problem():
    gt = _gt([1] * 4, {1: 1})
    with pytest.raises(
        PanopticFormatError, match=r"\[3\] are in the prediction PNG but not in its segments_info"
    ):
        coco_pq_stats(gt, _pred([3, 3, 0, 0], {}), CATEGORIES)
    with pytest.raises(KeyError):  # the same error type panopticapi raises
        coco_pq_stats(gt, _pred([3, 3, 0, 0], {3: 1, 4: 1}), CATEGORIES)
    with pytest.raises(ValueError, match=r"category_id\(s\) \[7\]"):
        coco_pq_stats(gt, _pred([3, 3, 0, 0], {3: 7}), CATEGORIES)
    with pytest.raises(ValueError, match="differ in shape"):
        coco_pq_stats(gt, _pred([3, 3, 0], {3: 1}), CATEGORIES)
