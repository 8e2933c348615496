"""find_sample_objects / BatchObjects: the objects of samples, found on the host, with the id checks."""

import pytest
import torch

from panst3r_core.losses.sample_objects import BatchObjects, find_sample_objects


def test_objects_are_sorted_ids_with_their_local_class_and_void_is_skipped():
    inst = torch.zeros(2, 3, 3, dtype=torch.int32)
    cls = torch.full_like(inst, 5)  # class ids on void pixels are never read
    inst[0, 0] = 9
    cls[0, 0] = 1
    inst[1, 2] = 4
    cls[1, 2] = 0
    objects = find_sample_objects(inst, cls, num_classes=2)
    assert objects.ids.tolist() == [4, 9] and objects.local_classes.tolist() == [0, 1]
    assert objects.ids.dtype == objects.local_classes.dtype == torch.int64


def test_a_void_only_sample_has_no_objects():
    objects = find_sample_objects(torch.zeros(3, 2, 2, dtype=torch.int32), torch.ones(3, 2, 2), num_classes=1)
    assert objects.ids.shape == objects.local_classes.shape == (0,)


def test_an_instance_with_two_classes_names_the_field_and_the_fix():
    inst = torch.ones(1, 2, 2, dtype=torch.int32)
    cls = torch.tensor([[[0, 0], [0, 1]]], dtype=torch.int32)
    with pytest.raises(
        ValueError, match=r"pan_cls_id: instance id\(s\) \[1\] carry more than one class id.*check"
    ):
        find_sample_objects(inst, cls, num_classes=2)


def test_a_class_id_outside_the_class_set_names_the_field_and_the_fix():
    inst = torch.ones(1, 2, 2, dtype=torch.int32)
    with pytest.raises(
        ValueError, match="pan_cls_id: class id 2 is outside the sample's class_set of 2 names;.*check"
    ):
        find_sample_objects(inst, torch.full_like(inst, 2), num_classes=2)


def test_id_maps_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match=r"must both be \(V, H, W\)"):
        find_sample_objects(torch.zeros(1, 2, 2), torch.zeros(1, 2, 3), num_classes=1)


def test_pack_concatenates_in_sample_order_and_keeps_the_counts():
    first = find_sample_objects(torch.tensor([[[3, 1]]]), torch.tensor([[[0, 1]]]), num_classes=2)
    empty = find_sample_objects(torch.zeros(1, 1, 2, dtype=torch.int64), torch.zeros(1, 1, 2), num_classes=1)
    packed = BatchObjects.pack([first, empty, first])
    assert packed.counts == (2, 0, 2)
    assert packed.ids.tolist() == [1, 3, 1, 3] and packed.local_classes.tolist() == [1, 0, 1, 0]
