"""Store GT ids and predicted segments -> evaluation classes/instances; vocabulary; GT/prediction alignment."""

from __future__ import annotations

import numpy as np
import pytest

from datasets.evaluation.label_maps import (
    UNKNOWN_CLASS,
    VOID_CLASS,
    EvalVocabulary,
    align_to_gt,
    crop_box,
    gt_label_maps,
    prediction_label_maps,
)

CATEGORIES = [
    {"id": 0, "name": "wall", "isthing": False},
    {"id": 1, "name": "floor", "isthing": False},
    {"id": 2, "name": "chair", "isthing": True},
    {"id": 3, "name": "table", "isthing": True},
]


@pytest.fixture
def vocabulary() -> EvalVocabulary:
    return EvalVocabulary.from_categories(CATEGORIES)


def test_vocabulary_shifts_store_ids_by_one_so_zero_is_void(vocabulary):
    assert vocabulary.things == {3, 4}
    assert vocabulary.stuff == {1, 2}
    assert vocabulary.categories() == {1: False, 2: False, 3: True, 4: True}
    assert vocabulary.name_of(1) == "wall" and vocabulary.name_of(VOID_CLASS) == "void"
    assert vocabulary.name_of(99) == "unknown"
    assert vocabulary.eval_classes_for(["table", "sky", "wall"]).tolist() == [4, UNKNOWN_CLASS, 1]


@pytest.mark.parametrize(
    ("categories", "message"),
    [
        ([], "no class categories"),
        ([{"id": 1, "name": "a", "isthing": True}], "not 0..0"),
        ([{"id": 0, "name": "a"}, {"id": 1, "name": "a"}], "appear twice"),
    ],
)
def test_vocabulary_rejects_unusable_categories(categories, message):
    with pytest.raises(ValueError, match=message):
        EvalVocabulary.from_categories(categories, "store X")


def test_gt_ids_split_into_class_and_instance_with_void_and_unknown(vocabulary):
    # instance * 256 + class: wall instance 1, chair instance 3, class 7 (not in the vocabulary), void
    panoptic = np.array([[1 * 256 + 0, 3 * 256 + 2], [5 * 256 + 7, 0]], dtype=np.uint32)
    classes, instances = gt_label_maps(panoptic, 256, vocabulary)
    assert classes.tolist() == [[1, 3], [UNKNOWN_CLASS, VOID_CLASS]]
    assert instances.tolist() == [[1, 3], [5, 0]]


def test_gt_honours_the_store_cls_sep(vocabulary):
    classes, instances = gt_label_maps(np.array([[2 * 1000 + 3]]), 1000, vocabulary)
    assert classes.tolist() == [[4]] and instances.tolist() == [[2]]


def test_predictions_map_to_store_classes_by_name(vocabulary):
    ids = np.array([[0, 5, 5], [9, 7, 12]], dtype=np.int32)
    # segment 7 is "sky" (not a store class); 12 is in the map but not in the segment list (void)
    classes, instances = prediction_label_maps(ids, [5, 9, 7], ["table", "wall", "sky"], vocabulary)
    assert classes.tolist() == [[VOID_CLASS, 4, 4], [1, UNKNOWN_CLASS, VOID_CLASS]]
    assert instances.tolist() == [[0, 5, 5], [9, 7, 0]]


def test_predictions_without_segments_are_void(vocabulary):
    classes, instances = prediction_label_maps(np.zeros((2, 2), np.int32), [], [], vocabulary)
    assert (classes == VOID_CLASS).all() and (instances == 0).all()


def test_crop_box_follows_the_predictors_centre_crop():
    # same aspect ratio: the whole view
    assert crop_box((690, 920), (384, 512)) == (0, 0, 690, 920)
    # a 16:9 view predicted at 4:3: the width is cropped to int(720 * 4/3) = 960, centred
    assert crop_box((720, 1280), (384, 512)) == (0, 160, 720, 960)
    # a too tall view: the height is cropped
    assert crop_box((1000, 1000), (384, 512)) == (125, 0, 750, 1000)


def test_align_resizes_the_prediction_to_the_cropped_gt_with_nearest_neighbour():
    gt = np.arange(4 * 6).reshape(4, 6)
    pred = np.array([[1, 2], [3, 4]])  # covers the central 4 x 4 of the GT
    (gt_out,), (pred_out,) = align_to_gt([gt], [pred])
    assert gt_out.tolist() == gt[:, 1:5].tolist()
    assert pred_out.tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]
