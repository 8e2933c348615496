"""collate_views: per-view dicts -> stacked batch tensors and per-sample lists."""

import pytest
import torch

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
