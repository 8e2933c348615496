"""The one place that knows a store has two homes, and what each must provide.

Both backends hold the same Zarr tree (root attrs, `scenes/<id>/...`, see schema.py) and the same derived
files beside it (tables, failure records, the input digest cache), and both keep the same promises: a scene
is visible only once completely written, a killed writer leaves nothing visible, concurrent writers of
different scenes never touch each other's data, and a failed scene is simply written again. How differs:

- `LocalBackend` (a directory): a scene is written under `_staging/` and committed with one rename.
- `IcechunkBackend` (`s3://bucket/prefix`): a scene is written in an Icechunk session and committed as one
  transaction; every commit is a snapshot with an id, the store's exact version.

Callers name a store by anything `StoreLocation.parse` takes (or a StoreLayout, or a backend) and ask
`backend_for(store)`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zarr

from datasets.store.location import StoreLocation
from datasets.store.schema import StoreLayout


@dataclass(frozen=True)
class StoreVersion:
    """The exact version of a store's content, as recorded with a training or evaluation run."""

    kind: str
    """`snapshot` (an Icechunk snapshot id) or `content_hash` (sha256 over the scenes table of a directory)."""
    id: str
    time: str = ""
    message: str = ""


class StoreBackend(ABC):
    """What the writer, the reader, the tables and the flows ask of a store."""

    location: StoreLocation

    # ------------------------------------------------------------------ the Zarr tree
    @abstractmethod
    def exists(self) -> bool:
        """Whether the root group exists."""

    @abstractmethod
    def create(self, attributes: dict[str, Any]) -> None:
        """Create the root group with `attributes` and its empty `scenes` group; ValueError when the location
        holds something that is not a store."""

    @abstractmethod
    def root_group(self) -> zarr.Group:
        """The root group, read-only, at one consistent version (a pinned snapshot stays pinned)."""

    @abstractmethod
    def update_root_attrs(self, updates: dict[str, Any]) -> None:
        """Change root attributes (the flow process only)."""

    @abstractmethod
    def committed_scene_ids(self) -> list[str]:
        """Scenes whose commit finished, sorted."""

    @abstractmethod
    def scene_attrs(self, scene_id: str) -> dict[str, Any]:
        """A committed scene's attributes; ValueError when it has none, CorruptSceneError when unreadable."""

    @abstractmethod
    def scene_token(self, scene_id: str) -> Hashable:
        """Changes whenever the scene is committed again (keys the tables' per-scene cache)."""

    @abstractmethod
    def commit_scene(self, scene_id: str, fill: Callable[[zarr.Group], None]) -> None:
        """Let `fill` write a new empty group, then make it `scenes/<scene_id>` in one atomic step, replacing
        any earlier version; on any error nothing becomes visible."""

    @abstractmethod
    def sweep(self) -> list[str]:
        """Remove what killed or failed writers left (only while nothing writes); the names removed."""

    @abstractmethod
    def lock(self) -> AbstractContextManager[None]:
        """Held for a whole preprocess run."""

    # ------------------------------------------------------------------ files beside the tree
    @abstractmethod
    def read_file(self, key: str) -> bytes | None:
        """The bytes of `key` (e.g. `tables/scenes.parquet`), None when it does not exist."""

    @abstractmethod
    def write_file(self, key: str, data: bytes) -> None:
        """Replace `key` atomically: a reader sees the old bytes or the new ones, never a torn file."""

    @abstractmethod
    def delete_file(self, key: str) -> None:
        """Remove `key`; no error when it is absent."""

    @abstractmethod
    def list_files(self, folder: str) -> list[str]:
        """Keys directly under `folder`, sorted."""

    @abstractmethod
    def describe(self, key: str = "") -> str:
        """Where `key` is, for messages: a path or a URL."""

    # ------------------------------------------------------------------ versions
    @abstractmethod
    def snapshot(self) -> StoreVersion | None:
        """The snapshot this backend reads (object stores), None for a directory (which has no snapshots)."""

    def refresh(self) -> None:  # noqa: B027 - a directory always shows its newest state: nothing to do
        """Read the newest version from now on."""

    def has_scene(self, scene_id: str) -> bool:
        return scene_id in self.committed_scene_ids()

    def history(self, limit: int) -> list[StoreVersion]:
        """The newest `limit` versions, newest first (empty where the backend keeps no history)."""
        return []

    def chunk_location(self, relative: str) -> str:
        """Where a chunk or metadata file `relative` to the Zarr root is, for messages."""
        return self.describe(relative)


StoreRef = str | Path | StoreLocation | StoreLayout | StoreBackend
"""Anything that names a store."""


def backend_for(store: StoreRef) -> StoreBackend:
    """The backend of a store named by a path, a URL, a StoreLocation, a StoreLayout or a backend."""
    if isinstance(store, StoreBackend):
        return store
    if isinstance(store, StoreLayout):
        store = store.root
    location = StoreLocation.parse(store)
    if location.is_local:
        from datasets.store.local_backend import LocalBackend

        return LocalBackend(location)
    from datasets.store.icechunk_backend import IcechunkBackend

    return IcechunkBackend(location)


def iter_json_files(backend: StoreBackend, folder: str) -> Iterator[tuple[str, bytes]]:
    """(key, bytes) of every `.json` file directly under `folder`; files that vanish meanwhile are skipped."""
    for key in backend.list_files(folder):
        if key.endswith(".json"):
            data = backend.read_file(key)
            if data is not None:
                yield key, data
