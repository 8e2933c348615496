"""What readers ask of a store's scenes table: which scenes to read, and the identity of its content."""

from __future__ import annotations

import hashlib
from pathlib import Path

from datasets.store.backend import StoreBackend, StoreRef, StoreVersion, backend_for
from datasets.store.location import StoreLocation
from datasets.store.tables import read_table

ALL_SPLITS = ("all", "")
"""Split names that select every committed scene."""


def select_scenes(store: str | Path, split: str | None) -> list[str]:
    """Readable scenes of `split` (None / "all": every one), sorted; scenes whose last attempt failed are
    left out. ValueError naming the store's splits when there is none to read."""
    scenes = read_table(store, "scenes")
    readable = scenes[scenes["status"].astype(str) != "failed"]
    if split is None or split in ALL_SPLITS:
        selected = readable["scene_id"].astype(str).tolist()
    else:
        labels = sorted(set(readable["split"].astype(str)) - {""})
        if not labels:
            raise ValueError(
                f"store {store} has no split labels (scenes table column `split` is empty); preprocess from "
                "a root with splits/*.txt, or pass --split all to read every scene"
            )
        selected = readable.loc[readable["split"].astype(str) == split, "scene_id"].astype(str).tolist()
        if not selected:
            raise ValueError(f"store {store} has no scene in split {split!r}; its splits are {labels}")
    if not selected:
        raise ValueError(f"store {store} has no committed scene; run `panst3r preprocess` first")
    return sorted(selected)


def content_hash(store: str | Path) -> str:
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


def store_version(store: StoreRef) -> StoreVersion:
    """The exact version of the store's content that a run records: the snapshot id of an object store
    (the pinned one, else the newest), the content hash of a directory."""
    snapshot = backend_for(store).snapshot()
    return snapshot if snapshot is not None else StoreVersion("content_hash", content_hash(store))


def pinned_store(store: StoreRef) -> StoreLocation:
    """The store a whole run reads: a directory's absolute path (a directory has no versions to pin), an
    object store pinned to its newest snapshot unless already pinned; FileNotFoundError when there is no
    store there."""
    location = StoreLocation.parse(
        store if not isinstance(store, StoreBackend) else store.location
    ).resolved()
    missing = FileNotFoundError(f"--store {location} does not exist; run `panst3r preprocess --store` first")
    if location.is_local:
        if not location.path.is_dir():
            raise missing
        return location
    backend = backend_for(location)
    if not backend.exists():
        raise missing
    return location.pinned(backend.snapshot().id)
