"""Store content hash: stable for the same scenes, changed by any added or re-preprocessed scene."""

from datasets.training.store_fingerprint import store_content_hash, stores_fingerprint
from datasets.training.toy_store import write_toy_store


def test_content_hash_tracks_the_committed_scenes(tmp_path):
    store = write_toy_store(tmp_path / "s", scenes=1, frames=3, image_size=(64, 48), seed=0)
    twin = write_toy_store(tmp_path / "t", scenes=1, frames=3, image_size=(64, 48), seed=0)
    assert store_content_hash(store) == store_content_hash(twin)
    before = store_content_hash(store)
    write_toy_store(store, scenes=1, frames=3, image_size=(64, 48), seed=5)
    assert store_content_hash(store) != before
    fingerprint = stores_fingerprint([store, twin])
    assert fingerprint["schema_version"] == "1,1" and len(fingerprint["content_hash"]) == 64
    assert stores_fingerprint([store])["content_hash"] == store_content_hash(store)
