"""What a training run records about its stores: schema versions and one content hash."""

from toy_store import write_toy_store

from datasets.store.queries import content_hash
from datasets.training.store_fingerprint import stores_content_hash, stores_fingerprint


def test_fingerprint_of_one_and_of_several_stores(tmp_path):
    store = write_toy_store(tmp_path / "s", scenes=1, frames=3, image_size=(64, 48), seed=0)
    twin = write_toy_store(tmp_path / "t", scenes=1, frames=3, image_size=(64, 48), seed=0)
    fingerprint = stores_fingerprint([store, twin])
    assert fingerprint["schema_version"] == "1,1" and len(fingerprint["content_hash"]) == 64
    assert stores_fingerprint([store])["content_hash"] == content_hash(store)
    assert fingerprint["content_hash"] != content_hash(store)
    assert stores_content_hash([store, twin]) == fingerprint["content_hash"]


def test_each_store_is_named_by_its_exact_version(tmp_path):
    store = write_toy_store(tmp_path / "s", scenes=1, frames=3, image_size=(64, 48), seed=0)
    other = write_toy_store(tmp_path / "o", scenes=1, frames=3, image_size=(64, 48), seed=1)
    fingerprint = stores_fingerprint([store, other])
    # A directory store has no snapshots: its version is its content hash, one per store, in order.
    assert fingerprint["version"] == f"{content_hash(store)},{content_hash(other)}"
    assert fingerprint["version_kind"] == "content_hash,content_hash"
