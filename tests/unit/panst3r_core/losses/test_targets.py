import pytest
import torch

from panst3r_core.losses.criterion import CriterionConfig, PanopticCriterion
from panst3r_core.losses.matcher import padded_targets
from panst3r_core.losses.sample_objects import BatchObjects, find_sample_objects
from panst3r_core.losses.targets import (
    batch_targets_from_objects,
    find_class_set_objects,
    output_mask_for,
    prepare_batch_targets,
    prepare_targets,
    split_class_set,
)

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


def scene_like_batch(samples=4, views=6, height=48, width=64, objects=20, seed=0):
    """int32 id maps like the loader's: sparse ids shared across views, rectangles visible in some views, one
    class per instance; the second sample has no objects. Class sets differ per sample (string and list)."""
    generator = torch.Generator().manual_seed(seed)
    inst = torch.zeros(samples, views, height, width, dtype=torch.int32)
    cls = torch.randint(0, 2, inst.shape, generator=generator, dtype=torch.int32)  # noise on void pixels
    class_sets = ["table;wall;chair", ["car", "person"], "chair;person;wall;table;car", ["wall", "car"]]
    for b in range(samples):
        if b == 1:
            continue
        num_classes = len(split_class_set(class_sets[b]))
        for obj in torch.randperm(1000, generator=generator)[:objects].add(1).tolist():
            label = int(torch.randint(0, num_classes, (1,), generator=generator))
            for v in range(views):
                if torch.rand(1, generator=generator) < 0.3:
                    continue
                y0 = int(torch.randint(0, height * 3 // 4, (1,), generator=generator))
                x0 = int(torch.randint(0, width * 3 // 4, (1,), generator=generator))
                inst[b, v, y0 : y0 + height // 4, x0 : x0 + width // 4] = obj * 1000
                cls[b, v, y0 : y0 + height // 4, x0 : x0 + width // 4] = label
    return inst, cls, class_sets


def objects_of(inst, cls, class_sets):
    """What the loader's collate attaches to a batch."""
    return BatchObjects.pack(
        [find_sample_objects(inst[b], cls[b], len(split_class_set(class_sets[b]))) for b in range(len(inst))]
    )


def test_targets_from_objects_are_exactly_prepare_batch_targets():
    inst, cls, class_sets = scene_like_batch()
    expected = prepare_batch_targets(inst, cls, class_sets, VOCABULARY)
    got = batch_targets_from_objects(inst, objects_of(inst, cls, class_sets), class_sets, VOCABULARY)
    assert [t.num_objects for t in got] == [t.num_objects for t in expected]
    assert got[1].num_objects == 0 and got[1].masks.shape == (0, *inst.shape[1:])
    for new, old in zip(got, expected):
        for field in ("masks", "labels", "output_mask"):
            a, b = getattr(new, field), getattr(old, field)
            assert a.dtype == b.dtype and torch.equal(a, b), field


def test_targets_from_objects_refuse_objects_of_another_batch():
    inst, cls, class_sets = scene_like_batch()
    objects = objects_of(inst[:2], cls[:2], class_sets[:2])
    with pytest.raises(ValueError, match="objects: found for 2 samples, the batch has 4"):
        batch_targets_from_objects(inst, objects, class_sets, VOCABULARY)
    with pytest.raises(ValueError, match="class sets"):
        batch_targets_from_objects(inst, objects_of(inst, cls, class_sets), class_sets[:3], VOCABULARY)


def test_targets_from_objects_still_check_the_class_names():
    inst, cls, _ = scene_like_batch(samples=1)
    with pytest.raises(ValueError, match="sofa"):
        batch_targets_from_objects(inst, objects_of(inst, cls, ["a;b;c"]), ["wall;sofa;car"], VOCABULARY)


def _outputs(batch, views, queries=24, classes=len(VOCABULARY), size=(24, 32), layers=3):
    """Random predictions with gradients: final layer plus auxiliary ones (deep supervision)."""
    generator = torch.Generator().manual_seed(1)
    layers_out = [
        {
            "pred_logits": torch.randn(batch, queries, classes, generator=generator).requires_grad_(),
            "pred_masks": torch.randn(batch, views, queries, *size, generator=generator).requires_grad_(),
        }
        for _ in range(layers)
    ]
    return {**layers_out[0], "aux_outputs": layers_out[1:]}


def _losses_matches_and_gradients(targets):
    inst_shape = targets[0].masks.shape[1:]
    outputs = _outputs(len(targets), inst_shape[0])
    criterion = PanopticCriterion(CriterionConfig(num_points=256))
    torch.manual_seed(7)  # the criterion's random points
    matches = criterion.matcher.match_padded(
        outputs["pred_logits"], outputs["pred_masks"], padded_targets(targets)
    )
    torch.manual_seed(7)
    losses = criterion(outputs, targets)
    losses["panoptic_loss"].backward()
    layers = [outputs, *outputs["aux_outputs"]]
    gradients = [layer[key].grad for layer in layers for key in ("pred_logits", "pred_masks")]
    return losses, matches, gradients


def test_losses_matches_and_gradients_are_bit_identical_on_both_paths():
    inst, cls, class_sets = scene_like_batch()
    new = batch_targets_from_objects(inst, objects_of(inst, cls, class_sets), class_sets, VOCABULARY)
    old = prepare_batch_targets(inst, cls, class_sets, VOCABULARY)
    new_losses, new_matches, new_gradients = _losses_matches_and_gradients(new)
    old_losses, old_matches, old_gradients = _losses_matches_and_gradients(old)
    assert new_losses.keys() == old_losses.keys() and "loss_ce_1" in new_losses
    assert all(torch.equal(new_losses[name], old_losses[name]) for name in new_losses)
    assert sum(match.query_indices.numel() for match in new_matches) > 0
    for a, b in zip(new_matches, old_matches):
        assert torch.equal(a.query_indices, b.query_indices)
        assert torch.equal(a.target_indices, b.target_indices)
    assert all(torch.equal(a, b) for a, b in zip(new_gradients, old_gradients))


def test_a_class_set_bounds_the_local_class_ids_of_its_sample():
    inst = torch.tensor([[[0, 4], [9, 9]]])
    cls = torch.tensor([[[0, 1], [2, 2]]])
    objects = find_class_set_objects(inst, cls, "wall;chair;table")
    assert objects.ids.tolist() == [4, 9] and objects.local_classes.tolist() == [1, 2]
    assert find_class_set_objects(inst, cls, ["wall", "chair", "table"]).ids.tolist() == [4, 9]
    with pytest.raises(ValueError, match="outside the sample's class_set of 2 names"):
        find_class_set_objects(inst, cls, "wall;chair")
