"""What a training run records about its data: the store schema version and a content hash."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from datasets.store.reader import StoreReader
from datasets.store.tables import read_table


def store_content_hash(store: str | Path) -> str:
    """sha256 over (scene id, source hash, config hash) of every committed scene in the scenes table: it
    changes exactly when a scene is added, removed, or re-preprocessed from other inputs or settings."""
    scenes = read_table(store, "scenes")
    committed = scenes[scenes["config_hash"].astype(str) != ""].sort_values("scene_id")
    digest = hashlib.sha256()
    for scene_id, source, config in committed[["scene_id", "source_hash", "config_hash"]].itertuples(
        index=False
    ):
        digest.update(f"{scene_id}\0{source}\0{config}\n".encode())
    return digest.hexdigest()


def stores_fingerprint(stores: Sequence[str | Path]) -> dict[str, str]:
    """`{schema_version, content_hash}` of the stores trained on together (comma-joined versions; one
    hash over the per-store hashes in order when there are several)."""
    versions = [str(StoreReader(store).schema_version) for store in stores]
    hashes = [store_content_hash(store) for store in stores]
    combined = hashes[0] if len(hashes) == 1 else hashlib.sha256("\n".join(hashes).encode()).hexdigest()
    return {"schema_version": ",".join(versions), "content_hash": combined}
