"""What a training run records about its data: the store schema version and a content hash."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from datasets.store.queries import content_hash, store_version
from datasets.store.reader import StoreReader


def stores_content_hash(stores: Sequence[str | Path]) -> str:
    """The content hash of the stores trained on together: a store's own `content_hash`, or one hash over
    the per-store hashes in order when there are several."""
    hashes = [content_hash(store) for store in stores]
    return hashes[0] if len(hashes) == 1 else hashlib.sha256("\n".join(hashes).encode()).hexdigest()


def stores_fingerprint(stores: Sequence[str | Path]) -> dict[str, str]:
    """`{schema_version, content_hash, version, version_kind}` of the stores trained on together
    (comma-joined schema versions; each store's exact version, comma-joined: an object store's snapshot
    id, a directory's content hash)."""
    versions = [str(StoreReader(store).schema_version) for store in stores]
    exact = [store_version(store) for store in stores]
    return {
        "schema_version": ",".join(versions),
        "content_hash": stores_content_hash(stores),
        "version": ",".join(v.id for v in exact),
        "version_kind": ",".join(v.kind for v in exact),
    }
