"""Hand-computed cases for the Panoptic Lifting scene protocol and each option that differs from COCO."""

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from panst3r_core.metrics.scene_pq import (
    SceneInput,
    ScenePQOptions,
    _ratio,
    nearest_source_indices,
    resize_nearest,
    scene_pq,
    scene_pq_single,
)

THINGS, STUFF = {1}, {2}  # obj, wall
# torchmetrics semantics on native pixels: no resize, no class dropping, no robust filter, COCO-style mean
TORCHMETRICS = ScenePQOptions(
    resize_to=None, drop_gt_classes=(), robust_threshold=0.0, mean_over_all_kept_classes=False
)
NATIVE_PL = replace(ScenePQOptions(), resize_to=None)


def _scene(gt_class, gt_instance, pred_class, pred_instance, name=""):
    """Views given as lists of 1-D rows."""
    as_maps = lambda rows: [np.array([row]) for row in rows]  # noqa: E731
    return SceneInput(
        as_maps(gt_class), as_maps(gt_instance), as_maps(pred_class), as_maps(pred_instance), name
    )


def test_case_A_predicted_void_also_leaves_the_gt_area():
    scene = _scene([[1] * 6 + [0] * 4], [[1] * 6 + [0] * 4], [[0, 0] + [1] * 8], [[0, 0] + [7] * 8])
    assert scene_pq_single(scene, THINGS, STUFF, TORCHMETRICS).all.pq == pytest.approx(1.0)


def test_case_B_and_C_void_union_and_merged_stuff():
    b = _scene([[1] * 4 + [2] * 6], [[1] * 4 + [0] * 6], [[0, 0, 0, 1] + [2] * 6], [[0, 0, 0, 5] + [0] * 6])
    result = scene_pq_single(b, THINGS, STUFF, TORCHMETRICS)
    assert result.per_class[1].pq == pytest.approx(1.0) and result.all.pq == pytest.approx(1.0)
    c = _scene([[2] * 10], [[3] * 5 + [4] * 5], [[2] * 10], [[9] * 10])
    assert scene_pq_single(c, THINGS, STUFF, TORCHMETRICS).all.pq == pytest.approx(1.0)
    unmerged = replace(TORCHMETRICS, merge_stuff_instances=False)
    assert scene_pq_single(c, THINGS, STUFF, unmerged).all.pq == 0.0  # two GT segments at IoU 0.5


def test_case_D2_crowd_as_instance_or_as_void():
    as_instance = _scene(
        [[1] * 8 + [0, 0]],
        [[5] * 4 + [1] * 4 + [0, 0]],
        [[1] * 4 + [0] + [1] * 3 + [0, 0]],
        [[2] * 4 + [0] + [3] * 3 + [0, 0]],
    )
    assert scene_pq_single(as_instance, THINGS, STUFF, TORCHMETRICS).all.pq == pytest.approx(1.0)
    as_void = _scene(
        [[9] * 4 + [1] * 4 + [0, 0]],
        [[0] * 4 + [1] * 4 + [0, 0]],
        [[1] * 4 + [0] + [1] * 3 + [0, 0]],
        [[2] * 4 + [0] + [3] * 3 + [0, 0]],
    )
    assert scene_pq_single(as_void, THINGS, STUFF, TORCHMETRICS).all.pq == pytest.approx(1.0)


def _case_e(second_view_id):
    gt_class = [[1] * 5 + [2] * 5] * 2
    gt_instance = [[1] * 5 + [0] * 5] * 2
    pred_class = [[1] * 5 + [2] * 5] * 2
    pred_instance = [[5] * 5 + [0] * 5, [second_view_id] * 5 + [0] * 5]
    return _scene(gt_class, gt_instance, pred_class, pred_instance)


def test_case_E_inconsistent_ids_across_views_are_punished_by_concatenation():
    result = scene_pq_single(_case_e(6), THINGS, STUFF, NATIVE_PL)
    assert (result.all.pq, result.all.sq, result.all.rq) == pytest.approx((0.5, 0.5, 0.5))
    assert result.per_class[1].pq == 0.0 and result.per_class[2].pq == pytest.approx(1.0)
    assert scene_pq_single(_case_e(5), THINGS, STUFF, NATIVE_PL).all.pq == pytest.approx(1.0)
    per_view = replace(NATIVE_PL, concatenate_views=False)
    assert scene_pq_single(_case_e(6), THINGS, STUFF, per_view).all.pq == pytest.approx(1.0)
    # resizing every 1 x 10 view to 512 x 512 keeps both views identical: still 0.5
    assert scene_pq_single(_case_e(6), THINGS, STUFF).all.pq == pytest.approx(0.5)


def test_gt_class_0_pixels_are_deleted_from_both_sides():
    things, stuff = {1}, {0, 2}  # class 0 is a stuff class, as in Panoptic Lifting
    scene = _scene([[0] * 5 + [1] * 5], [[0] * 5 + [1] * 5], [[2] * 5 + [1] * 5], [[0] * 5 + [4] * 5])
    # deleted: the wall prediction on GT class 0 vanishes, wall and class 0 are unused -> only obj, PQ 1
    kept = scene_pq_single(scene, things, stuff, NATIVE_PL)
    assert kept.all.pq == pytest.approx(1.0) and kept.all.n == 1
    # kept as a class: GT class-0 stuff is a FN, the wall a FP -> (0 + 1 + 0) / 3
    not_dropped = scene_pq_single(scene, things, stuff, replace(NATIVE_PL, drop_gt_classes=()))
    assert not_dropped.all.pq == pytest.approx(1 / 3) and not_dropped.all.n == 3


def test_robust_filter_removes_rare_classes_on_either_side_but_not_absent_ones():
    n = 1000
    gt_class, gt_instance = [[1] * n], [[1] * n]
    # a predicted wall of 4 px (0.4 %) is removed: its pixels become void and the obj IoU is 1
    rare = _scene(gt_class, gt_instance, [[1] * 996 + [2] * 4], [[1] * 996 + [0] * 4])
    assert scene_pq_single(rare, THINGS, STUFF, NATIVE_PL).all.pq == pytest.approx(1.0)
    # without the filter the wall is a FP class and its pixels are not void: (996 / 1000 + 0) / 2
    unfiltered = scene_pq_single(rare, THINGS, STUFF, replace(NATIVE_PL, robust_threshold=0))
    assert unfiltered.all.pq == pytest.approx(0.498, rel=1e-6)
    # 5 px = exactly 0.5 % is kept (share < threshold removes): (995 / 1000 + 0) / 2
    borderline = _scene(gt_class, gt_instance, [[1] * 995 + [2] * 5], [[1] * 995 + [0] * 5])
    assert scene_pq_single(borderline, THINGS, STUFF, NATIVE_PL).all.pq == pytest.approx(0.4975, rel=1e-6)
    # asymmetry: a GT class with no predicted pixel is kept and costs a FN; a predicted-only rare one does not
    missed = _scene([[1] * 900 + [2] * 100], [[1] * 900 + [0] * 100], [[1] * n], [[1] * n])
    result = scene_pq_single(missed, THINGS, STUFF, NATIVE_PL)
    assert result.per_class[1].pq == pytest.approx(0.9) and result.per_class[2].pq == 0.0
    assert result.all.pq == pytest.approx(0.45)


def test_unknown_predictions_are_void_and_kept_classes_with_nothing_counted_average_as_zero():
    scene = _scene([[1] * 10], [[1] * 10], [[9] * 10], [[0] * 10])
    # all GT predicted void: no FN (rule), no TP/FP; obj is still a kept class -> PQ 0 over n = 1
    result = scene_pq_single(scene, THINGS, STUFF, NATIVE_PL)
    assert result.all.pq == 0.0 and result.all.n == 1
    coco_mean = scene_pq_single(scene, THINGS, STUFF, replace(NATIVE_PL, mean_over_all_kept_classes=False))
    assert coco_mean.all.pq is None and coco_mean.all.n == 0
    with_fn = scene_pq_single(scene, THINGS, STUFF, replace(NATIVE_PL, fn_ignores_void_predictions=False))
    assert with_fn.per_class[1].rq == 0.0 and with_fn.all.n == 1
    with pytest.raises(ValueError, match=r"\[9\]"):
        scene_pq_single(scene, THINGS, STUFF, replace(NATIVE_PL, allow_unknown_pred_classes=False))


def test_iou_option_removes_or_keeps_predicted_void_in_the_union():
    scene = _scene(
        [[1] * 6 + [2] * 4],
        [[1] * 6 + [0] * 4],
        [[9, 9, 9] + [1] * 3 + [2] * 4],
        [[0] * 3 + [4] * 3 + [0] * 4],
    )
    both = scene_pq_single(scene, THINGS, STUFF, NATIVE_PL)
    assert both.per_class[1].sq == pytest.approx(1.0)  # 3 / (3 + 6 - 3 - 3)
    gt_side_only = scene_pq_single(scene, THINGS, STUFF, replace(NATIVE_PL, iou_removes_pred_void=False))
    assert gt_side_only.per_class[1].pq == 0.0  # 3 / 6 = 0.5 is not > 0.5


def test_float32_iou_rounds_a_hair_above_half_to_half():
    inter, union = np.array([2**25]), np.array([2**26 - 1])
    assert _ratio(inter, union, True)[0] == 0.5
    assert _ratio(inter, union, False)[0] > 0.5


@pytest.mark.parametrize("src_len", [1, 7, 10, 96, 384, 511, 512, 513, 1024, 1440])
def test_nearest_index_rule_equals_pil_nearest(src_len):
    source = np.arange(src_len, dtype=np.int32)[None, :].repeat(3, axis=0)
    pil = np.array(Image.fromarray(source).resize((512, 3), Image.NEAREST))[0]
    assert np.array_equal(nearest_source_indices(src_len, 512), pil)
    assert resize_nearest(source, (512, 3)).shape == (3, 512)


def test_dataset_score_is_the_mean_over_scenes():
    good = _case_e(5)
    good.name = "good"
    bad = _case_e(6)
    bad.name = "bad"
    result = scene_pq([good, bad], THINGS, STUFF, NATIVE_PL)
    assert result.all.pq == pytest.approx(0.75) and result.all.n == 2
    assert set(result.per_scene) == {"good", "bad"}
    assert result.per_class[1].pq == pytest.approx(0.5)
    assert result.to_dict()["per_scene"]["bad"]["All"]["pq"] == pytest.approx(0.5)
