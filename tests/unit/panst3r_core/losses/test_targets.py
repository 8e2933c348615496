import pytest
import torch

from panst3r_core.losses.targets import output_mask_for, prepare_batch_targets, prepare_targets

VOCABULARY = ["wall", "chair", "table", "person", "car"]


def test_objects_masks_and_classes_resolved_by_name():
    # Local class set in another order than the vocabulary: local 0 = table, 1 = wall, 2 = chair.
    class_set = "table;wall;chair"
    inst = torch.zeros(2, 4, 4, dtype=torch.int64)
    cls = torch.zeros(2, 4, 4, dtype=torch.int64)
    inst[0, :2, :2] = 7  # object 7 (wall) only in view 0
    cls[0, :2, :2] = 1
    inst[:, 2:, 2:] = 3  # object 3 (chair) in both views
    cls[:, 2:, 2:] = 2
    cls[1, 0, 0] = 0  # class on a void pixel must be ignored

    targets = prepare_targets(inst, cls, class_set, VOCABULARY)

    assert targets.masks.shape == (2, 2, 4, 4)
    assert targets.masks.dtype == torch.bool
    # Objects are sorted by id: 3 then 7.
    assert targets.labels.tolist() == [VOCABULARY.index("chair"), VOCABULARY.index("wall")]
    assert torch.equal(targets.masks[0], inst == 3)
    assert torch.equal(targets.masks[1], inst == 7)
    # Object 7 is absent in view 1: an empty target, still present.
    assert targets.masks[1, 1].sum() == 0
    assert targets.output_mask.tolist() == [True, True, True, False, False]


def test_class_set_as_list_and_void_only_sample():
    inst = torch.zeros(3, 2, 2, dtype=torch.int64)
    cls = torch.ones(3, 2, 2, dtype=torch.int64)  # class ids on void pixels do not create objects
    targets = prepare_targets(inst, cls, ["person", "car"], VOCABULARY)
    assert targets.num_objects == 0
    assert targets.masks.shape == (0, 3, 2, 2)
    assert targets.output_mask.tolist() == [False, False, False, True, True]


def test_instance_with_two_classes_is_an_error():
    inst = torch.ones(1, 2, 2, dtype=torch.int64)
    cls = torch.tensor([[[0, 0], [0, 1]]])
    with pytest.raises(ValueError, match="more than one class"):
        prepare_targets(inst, cls, "wall;chair", VOCABULARY)


def test_unknown_class_name_and_out_of_range_class_id_are_errors():
    inst = torch.ones(1, 2, 2, dtype=torch.int64)
    with pytest.raises(ValueError, match="sofa"):
        prepare_targets(inst, torch.zeros_like(inst), "wall;sofa", VOCABULARY)
    with pytest.raises(ValueError, match="outside the sample's class_set"):
        prepare_targets(inst, torch.full_like(inst, 2), "wall;chair", VOCABULARY)


def test_batch_targets_and_output_masks_per_dataset():
    inst = torch.zeros(2, 1, 2, 2, dtype=torch.int64)
    inst[:, 0, 0, 0] = 1
    cls = torch.zeros_like(inst)
    targets = prepare_batch_targets(inst, cls, ["wall;chair", "person;car"], VOCABULARY)
    assert [t.labels.tolist() for t in targets] == [[0], [3]]
    assert output_mask_for("car", VOCABULARY).tolist() == [False, False, False, False, True]
    with pytest.raises(ValueError, match="class sets"):
        prepare_batch_targets(inst, cls, ["wall"], VOCABULARY)


def test_random_samples_match_a_per_object_reading():
    generator = torch.Generator().manual_seed(4)
    inst = (
        torch.randint(0, 40, (6, 24, 32), generator=generator, dtype=torch.int32) * 1000
    )  # sparse, large ids
    class_of = torch.randint(0, 3, (40 * 1000,), generator=generator)
    cls = class_of[inst.long()].to(torch.int32)
    targets = prepare_targets(inst, cls, "table;wall;chair", VOCABULARY)
    ids = sorted(set(inst.flatten().tolist()) - {0})
    global_of_local = [VOCABULARY.index(name) for name in ("table", "wall", "chair")]
    assert targets.labels.tolist() == [global_of_local[int(class_of[i])] for i in ids]
    for position, object_id in enumerate(ids):
        assert torch.equal(targets.masks[position], inst == object_id)


def test_negative_class_ids_are_refused():
    inst = torch.ones(1, 2, 2, dtype=torch.int64)
    cls = torch.zeros(1, 2, 2, dtype=torch.int64)
    cls[0, 1, 1] = -1
    with pytest.raises(ValueError, match="class id -1 is outside the sample's class_set of 2 names"):
        prepare_targets(inst, cls, ["wall", "chair"], VOCABULARY)
