"""StoreViewDataset on small stores written in the preprocessing layout (toy scenes, no rendering)."""

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from toy_store import TOY_CLASSES, write_toy_store

from datasets.store.tables import read_table
from datasets.training.collate import collate_views
from datasets.training.dataset import StoreViewDataset
from panst3r_core.engine.sampler import BatchedViewSampler, SampleKey
from panst3r_core.losses.targets import batch_targets_from_objects, prepare_batch_targets

RESOLUTIONS = [(64, 48), (64, 32)]
OTHER_CLASSES = ["wall", "floor", "chair", "bed", "lamp", "tv", "shelf", "sink"]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("stores")
    first = write_toy_store(root / "a", scenes=2, frames=5, image_size=(96, 72), seed=1)
    second = write_toy_store(
        root / "b", scenes=1, frames=4, image_size=(96, 72), seed=2, class_names=OTHER_CLASSES
    )
    split = root / "split"
    write_toy_store(split, scenes=1, frames=4, image_size=(96, 72), seed=3, split="train")
    write_toy_store(split, scenes=1, frames=4, image_size=(96, 72), seed=4, split="val")
    return first, second, split


def test_length_is_the_number_of_pairs(stores):
    dataset = StoreViewDataset([stores[0]], 3, RESOLUTIONS, seed=0)
    assert len(dataset) == len(read_table(stores[0], "pairs")) > 0


def test_item_views_have_the_batch_resolution_and_all_targets(stores):
    dataset = StoreViewDataset([stores[0]], 3, RESOLUTIONS, aug_crop=8, seed=0)
    views = dataset[SampleKey(2, 1, 2, 1234)]
    assert len(views) == 3
    pairs = read_table(stores[0], "pairs")
    for view in views:
        assert view["img"].shape == (3, 32, 64) and view["img"].dtype == torch.float32
        assert -1.0 <= view["img"].min() and view["img"].max() <= 1.0
        assert view["true_shape"].tolist() == [32, 64]
        assert view["pan_inst_id"].shape == (32, 64) and view["pan_inst_id"].dtype == torch.int32
        assert view["pan_cls_id"].max() < len(TOY_CLASSES)
        assert view["class_set"].split(";") == TOY_CLASSES
        assert view["camera_pose"].shape == (4, 4) and view["camera_intrinsics"].shape == (3, 3)
        assert torch.allclose(view["depth"][view["depth"] > 0], torch.tensor(2.0))  # toy walls at 2 m
        assert view["memory_num_views"] == 2
    assert len({view["scene_id"] for view in views}) == 1
    # The first two views are the sample's pair; every view belongs to the scene's pair graph.
    row = pairs.iloc[2]
    assert [views[0]["frame_index"], views[1]["frame_index"]] == [row.frame_a, row.frame_b]


def test_same_key_same_sample_and_the_seed_matters(stores):
    dataset = StoreViewDataset([stores[0]], 3, RESOLUTIONS, seed=0)
    first, again, other = dataset[(0, 0, 3, 5)], dataset[(0, 0, 3, 5)], dataset[(0, 0, 3, 6)]
    assert all(torch.equal(a["img"], b["img"]) for a, b in zip(first, again))
    assert not all(torch.equal(a["img"], b["img"]) for a, b in zip(first, other))


def test_instance_ids_are_shared_across_the_views_of_a_sample(stores):
    dataset = StoreViewDataset([stores[0]], 3, [(64, 48)], aug_crop=0, seed=0, transform=None)
    views = dataset[(0, 0, 3, 1)]
    ids = [set(view["pan_inst_id"].unique().tolist()) - {0} for view in views]
    assert ids[0] & ids[1]  # an overlapping pair sees common objects under the same ids


def test_several_stores_share_one_global_vocabulary(stores):
    dataset = StoreViewDataset([stores[0], stores[1]], 2, [(64, 48)], seed=0)
    assert dataset.classes == TOY_CLASSES + ["bed", "tv", "sink"]
    per_store = {}
    for index in range(len(dataset)):
        views = dataset[(index, 0, 2, index)]
        per_store.setdefault(views[0]["dataset"], views)
    assert set(per_store) == {stores[0].name, stores[1].name}
    batch = collate_views([per_store[stores[0].name], per_store[stores[1].name]])
    targets = prepare_batch_targets(
        batch["pan_inst_id"], batch["pan_cls_id"], batch["class_set"], dataset.classes
    )
    # Store b's local class 3 is "bed": its targets point at "bed" in the global list, and its output mask
    # excludes classes only store a has.
    second = targets[1]
    names = {dataset.classes[label] for label in second.labels.tolist()}
    assert names <= set(OTHER_CLASSES)
    assert not second.output_mask[dataset.classes.index("sofa")]
    assert second.output_mask[dataset.classes.index("bed")]
    assert targets[0].output_mask[dataset.classes.index("sofa")]


def test_objects_found_by_the_collate_give_the_targets_of_the_id_maps(stores):
    dataset = StoreViewDataset([stores[0], stores[1]], 3, [(64, 48)], seed=0)
    batch = collate_views([dataset[(index, 0, 3, index)] for index in range(len(dataset))])
    assert sum(batch["objects"].counts) > 0
    old = prepare_batch_targets(
        batch["pan_inst_id"], batch["pan_cls_id"], batch["class_set"], dataset.classes
    )
    new = batch_targets_from_objects(
        batch["pan_inst_id"], batch["objects"], batch["class_set"], dataset.classes
    )
    for a, b in zip(new, old):
        assert torch.equal(a.masks, b.masks) and torch.equal(a.labels, b.labels)
        assert torch.equal(a.output_mask, b.output_mask)


def test_split_selects_scenes_and_unknown_splits_fail(stores):
    split_store = stores[2]
    val = StoreViewDataset([split_store], 2, [(64, 48)], split="val")
    assert {scene for _, scene in val.index.scenes} == {"toy004_00"}
    everything = StoreViewDataset([split_store], 2, [(64, 48)], split=None)
    assert len(everything.index.scenes) == 2
    with pytest.raises(ValueError, match="no training pairs"):
        StoreViewDataset([split_store], 2, [(64, 48)], split="test")
    unlabelled = StoreViewDataset([stores[0]], 2, [(64, 48)], split="train")
    assert len(unlabelled.index.scenes) == 2  # no split labels: every scene


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        StoreViewDataset([tmp_path / "nope"], 2, [(64, 48)])


def test_pickles_without_open_handles_and_workers_build_identical_batches(stores):
    dataset = StoreViewDataset([stores[0]], 3, RESOLUTIONS, seed=0)
    dataset[(0, 0, 3, 1)]  # opens handles in this process
    assert pickle.loads(pickle.dumps(dataset))._readers == {}
    sampler = BatchedViewSampler(len(dataset), 2, len(RESOLUTIONS), 1, 3, samples_per_epoch=8, seed=3)
    serial = list(DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_views, num_workers=0))
    parallel = list(DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_views, num_workers=2))
    assert len(serial) == len(parallel) == 4
    for a, b in zip(serial, parallel):
        assert torch.equal(a["images"], b["images"]) and torch.equal(a["pan_inst_id"], b["pan_inst_id"])
        assert a["images"].shape[-2:] in (torch.Size([48, 64]), torch.Size([32, 64]))
    assert np.all([batch["memory_num_views"].unique().numel() == 1 for batch in serial])


class _OpenCvThreads(torch.utils.data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        import cv2

        return cv2.getNumThreads()


def test_loader_workers_get_one_opencv_thread():
    from datasets.training.dataset import loader_worker_init

    loader = DataLoader(_OpenCvThreads(), num_workers=1, worker_init_fn=loader_worker_init)
    assert [int(threads) for threads in loader] == [1, 1]
