"""Which scenes readers take from a store, and the identity of its content."""

import pytest
from toy_store import write_toy_store

from datasets.store.failures import write_failure
from datasets.store.queries import content_hash, select_scenes
from datasets.store.schema import StoreLayout
from datasets.store.tables import TableBuilder


@pytest.fixture
def split_store(tmp_path):
    store = write_toy_store(tmp_path / "s", scenes=2, frames=3, image_size=(64, 48), seed=0, split="train")
    return write_toy_store(store, scenes=1, frames=3, image_size=(64, 48), seed=1, split="val")


def test_scenes_of_a_split_leave_failed_ones_out(split_store):
    assert select_scenes(split_store, "val") == ["toy001_00"]
    assert select_scenes(split_store, "all") == select_scenes(split_store, None) == ["toy000_00", "toy000_01", "toy001_00"]  # fmt: skip
    write_failure(StoreLayout(split_store), "toy000_01", "OSError", "disk full")
    write_failure(StoreLayout(split_store), "never0000", "ValueError", "bad PLY")
    TableBuilder(split_store).write()
    assert select_scenes(split_store, "train") == ["toy000_00"]
    assert select_scenes(split_store, None) == ["toy000_00", "toy001_00"]


def test_unknown_or_missing_splits_are_clear_errors(split_store, tmp_path):
    with pytest.raises(ValueError, match=r"no scene in split 'test'; its splits are \['train', 'val'\]"):
        select_scenes(split_store, "test")
    unlabelled = write_toy_store(tmp_path / "u", scenes=1, frames=3, image_size=(64, 48))
    with pytest.raises(ValueError, match="no split labels"):
        select_scenes(unlabelled, "val")
    assert select_scenes(unlabelled, "all") == ["toy000_00"]
    with pytest.raises(FileNotFoundError, match="panst3r preprocess"):
        select_scenes(tmp_path / "nothing", "val")


def test_content_hash_tracks_the_committed_scenes(tmp_path):
    store = write_toy_store(tmp_path / "s", scenes=1, frames=3, image_size=(64, 48), seed=0)
    twin = write_toy_store(tmp_path / "t", scenes=1, frames=3, image_size=(64, 48), seed=0)
    assert content_hash(store) == content_hash(twin)
    before = content_hash(store)
    write_toy_store(store, scenes=1, frames=3, image_size=(64, 48), seed=5)
    assert content_hash(store) != before
