"""collate_views: per-view dicts -> stacked batch tensors and per-sample lists."""

import pytest
import torch
from torch.utils.data import DataLoader

from datasets.training.collate import collate_views


def view(height=4, width=6, frame=0, class_set="a;b"):
    return {
        "img": torch.zeros(3, height, width),
        "true_shape": torch.tensor([height, width]),
        "pan_inst_id": torch.zeros(height, width, dtype=torch.int32),
        "pan_cls_id": torch.zeros(height, width, dtype=torch.int32),
        "camera_pose": torch.eye(4),
        "camera_intrinsics": torch.eye(3),
        "depth": torch.ones(height, width),
        "class_set": class_set,
        "dataset": "store",
        "scene_id": "s0",
        "frame_index": frame,
        "memory_num_views": 2,
        "duplicate": frame == 9,
    }


def test_stacks_views_and_samples():
    batch = collate_views([[view(frame=1), view(frame=2)], [view(frame=3, class_set="c"), view(frame=9)]])
    assert batch["images"].shape == (2, 2, 3, 4, 6)
    assert batch["pan_inst_id"].shape == (2, 2, 4, 6) and batch["camera_pose"].shape == (2, 2, 4, 4)
    assert batch["true_shape"].shape == (2, 2, 2) and batch["frame_index"].tolist() == [[1, 2], [3, 9]]
    assert batch["duplicate"].tolist() == [[False, False], [False, True]]
    assert batch["class_set"] == ["a;b", "c"] and batch["memory_num_views"].tolist() == [2, 2]


def test_mixed_resolutions_are_refused():
    with pytest.raises(ValueError, match="one resolution"):
        collate_views([[view()], [view(height=8)]])


def labelled_view(instances, classes, class_set="a;b", scene="s0"):
    """A 1x3 view with these instance and class ids."""
    labelled = view(height=1, width=3, class_set=class_set)
    labelled["pan_inst_id"] = torch.tensor([instances], dtype=torch.int32)
    labelled["pan_cls_id"] = torch.tensor([classes], dtype=torch.int32)
    labelled["scene_id"] = scene
    return labelled


def test_objects_of_each_sample_are_found_over_its_views():
    first = [labelled_view([0, 7, 7], [1, 0, 0]), labelled_view([2, 0, 7], [1, 1, 0])]
    void = [
        labelled_view([0, 0, 0], [1, 1, 1], class_set="c"),
        labelled_view([0, 0, 0], [0, 0, 0], class_set="c"),
    ]
    objects = collate_views([first, void])["objects"]
    assert objects.counts == (2, 0)
    assert objects.ids.tolist() == [2, 7] and objects.local_classes.tolist() == [1, 0]


@pytest.mark.parametrize(
    ("instances", "classes", "message"),
    [
        ([5, 5, 0], [0, 1, 0], r"scene bad: pan_cls_id: instance id\(s\) \[5\] carry more than one class id"),
        (
            [5, 0, 0],
            [2, 0, 0],
            "scene bad: pan_cls_id: class id 2 is outside the sample's class_set of 2 names",
        ),
    ],
)
def test_bad_ids_name_the_scene_and_the_field(instances, classes, message):
    good = [labelled_view([1, 0, 0], [0, 0, 0])]
    bad = [labelled_view(instances, classes, scene="bad")]
    with pytest.raises(ValueError, match=message):
        collate_views([good, bad])


class _BadSamples(torch.utils.data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        return [labelled_view([5, 5, 0], [0, 1, 0], scene="bad")]


def test_bad_ids_in_a_loader_worker_give_the_same_error():
    loader = DataLoader(_BadSamples(), batch_size=2, collate_fn=collate_views, num_workers=1)
    with pytest.raises(
        ValueError, match=r"scene bad: pan_cls_id: instance id\(s\) \[5\] carry more than one"
    ):
        next(iter(loader))
