"""A store in an S3-compatible object store: the Zarr tree in an Icechunk repository at
`s3://bucket/prefix/scenes.icechunk`, the files beside it as objects under `s3://bucket/prefix/`.

Object stores have no rename; Icechunk's transactions take its place. A writer opens a session on branch
`main`, writes its scene group (replacing an older version inside the same session) and commits: the
commit is atomic, so the scene appears whole or not at all, and a killed writer's uncommitted chunks are
never referenced. Concurrent writers of different scenes both commit: when another commit landed first,
the session is rebased onto it (Icechunk's ConflictDetector finds no conflict between different groups)
and committed again. Every commit is a snapshot with an id, which names the store's exact content.

Icechunk (Rust, tokio) cannot be used in a process forked from one that already used it: loader workers
of such stores must be spawned (`needs_spawned_workers`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import zarr
from zarr.errors import GroupNotFoundError

from datasets.store.backend import StoreBackend, StoreVersion
from datasets.store.integrity import open_metadata
from datasets.store.location import StoreLocation
from datasets.store.object_files import ObjectFiles
from datasets.store.s3_settings import S3Settings
from datasets.store.schema import ICECHUNK_DIRNAME, SCENES_GROUP

log = logging.getLogger(__name__)

BRANCH = "main"
COMMIT_REBASE_TRIES = 200
"""A commit retried on top of others' commits; each retry re-reads only the branch tip."""


class IcechunkBackend(StoreBackend):
    """Reads one snapshot: the pinned one, else the tip of `main` when first asked (`refresh` moves on)."""

    def __init__(self, location: StoreLocation, settings: S3Settings | None = None):
        self.location = location
        self.settings = settings or S3Settings.from_env()
        self.files = ObjectFiles(location, self.settings)
        self._repo = None
        self._session = None

    # ------------------------------------------------------------------ repository and sessions
    def _repository(self, create: bool = False):
        import icechunk

        if self._repo is None:
            storage = self.settings.icechunk_storage(self.location, ICECHUNK_DIRNAME)
            try:
                if icechunk.Repository.exists(storage):
                    self._repo = icechunk.Repository.open(storage)
                elif create:
                    self._repo = icechunk.Repository.open_or_create(storage)
                else:
                    return None
            except icechunk.IcechunkError as exc:
                raise self._unreachable(exc) from exc
        return self._repo

    def _unreachable(self, exc: BaseException) -> ConnectionError:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return ConnectionError(
            f"store {self.location}: the object store at {self.settings.describe()} refused or did not answer "
            f"({first[:300]}); check AWS_ENDPOINT_URL (or --s3-endpoint), AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY "
            "and that the bucket exists"
        )

    def _read_session(self):
        if self._session is None:
            repo = self._repository()
            if repo is None:
                raise FileNotFoundError(
                    f"no scene store at {self.location} (no {ICECHUNK_DIRNAME} repository there); run "
                    "`panst3r preprocess --store` to create it"
                )
            if self.location.snapshot:
                self._session = repo.readonly_session(snapshot_id=self.location.snapshot)
            else:
                self._session = repo.readonly_session(branch=BRANCH)
        return self._session

    def refresh(self) -> None:
        """Read the newest snapshot from now on (no-op for a pinned location)."""
        self._session = None

    def _commit(self, change: Callable[[zarr.Group], None], message: str, mode: str = "r+") -> str:
        import icechunk

        if self.location.snapshot:
            raise ValueError(f"store {self.location} is pinned to a snapshot; write to {self.location.text}")
        session = self._repository(create=True).writable_session(BRANCH)
        change(zarr.open_group(store=session.store, mode=mode))
        snapshot = session.commit(
            message, rebase_with=icechunk.ConflictDetector(), rebase_tries=COMMIT_REBASE_TRIES
        )
        self.refresh()
        return snapshot

    # ------------------------------------------------------------------ the Zarr tree
    def exists(self) -> bool:
        if self._repository() is None:
            return False
        try:
            root = zarr.open_group(store=self._read_session().store, mode="r")
        except GroupNotFoundError:
            return False  # the repository exists, its first commit does not yet
        return "schema_version" in root.attrs

    def create(self, attributes: dict[str, Any]) -> None:
        stranger = None if self._repository() is not None else self.files.any_key()
        if stranger is not None:
            raise ValueError(
                f"--store {self.location} holds {stranger}, not a scene store; pass an empty or new prefix"
            )

        def make_root(root: zarr.Group) -> None:
            root.attrs.update(attributes)
            root.create_group(SCENES_GROUP)

        self._commit(make_root, "create the store", mode="w-")

    def root_group(self) -> zarr.Group:
        return zarr.open_group(store=self._read_session().store, mode="r")

    def update_root_attrs(self, updates: dict[str, Any]) -> None:
        self._commit(lambda root: root.attrs.update(updates), f"set {', '.join(sorted(updates))}")

    def committed_scene_ids(self) -> list[str]:
        if self._repository() is None:
            return []
        root = self.root_group()
        return sorted(root[SCENES_GROUP].group_keys()) if SCENES_GROUP in root else []

    def scene_attrs(self, scene_id: str) -> dict[str, Any]:
        scenes = self.root_group()[SCENES_GROUP]
        if scene_id not in scenes:
            raise ValueError(f"store {self.location} has no committed scene {scene_id!r}")
        where = self.chunk_location(f"{SCENES_GROUP}/{scene_id}/zarr.json")
        return open_metadata(lambda: dict(scenes[scene_id].attrs), where, scene_id)

    def scene_token(self, scene_id: str) -> Hashable:
        # Every commit of a scene writes a new `committed_at` (microseconds) into its attributes.
        return str(self.scene_attrs(scene_id).get("committed_at", ""))

    def commit_scene(self, scene_id: str, fill: Callable[[zarr.Group], None]) -> None:
        def replace_scene(root: zarr.Group) -> None:
            scenes = root[SCENES_GROUP]
            if scene_id in scenes:
                del scenes[scene_id]  # the old version goes in the same commit that adds the new one
            fill(scenes.create_group(scene_id))

        snapshot = self._commit(replace_scene, f"commit scene {scene_id}")
        log.info("scene %s committed to %s as snapshot %s", scene_id, self.location, snapshot)

    def sweep(self) -> list[str]:
        # Uncommitted writes are never referenced by a snapshot: there is nothing visible to remove.
        return []

    def lock(self) -> AbstractContextManager[None]:
        # No flock on an object store. Concurrent runs cannot corrupt the store (each scene is one
        # transaction, tables are rebuilt from a snapshot); at worst they do the same scene twice.
        return nullcontext()

    # ------------------------------------------------------------------ files beside the tree
    def read_file(self, key: str) -> bytes | None:
        return self.files.read(key)

    def write_file(self, key: str, data: bytes) -> None:
        self.files.write(key, data)

    def delete_file(self, key: str) -> None:
        self.files.delete(key)

    def list_files(self, folder: str) -> list[str]:
        return self.files.list(folder)

    def describe(self, key: str = "") -> str:
        return self.files.describe(key)

    def chunk_location(self, relative: str) -> str:
        snapshot = self._read_session().snapshot_id
        return f"{self.location.text}/{ICECHUNK_DIRNAME} (snapshot {snapshot}) {relative}"

    # ------------------------------------------------------------------ versions
    def snapshot(self) -> StoreVersion:
        snapshot_id = self._read_session().snapshot_id
        info = self._repository().lookup_snapshot(snapshot_id)
        return _version(info)

    def history(self, limit: int) -> list[StoreVersion]:
        versions = []
        for info in self._repository().ancestry(snapshot_id=self._read_session().snapshot_id):
            versions.append(_version(info))
            if len(versions) >= limit:
                break
        return versions


def _version(info) -> StoreVersion:
    return StoreVersion("snapshot", info.id, info.written_at.isoformat(timespec="seconds"), info.message)


def needs_spawned_workers(stores) -> bool:
    """Whether loader workers reading `stores` must be spawned rather than forked (see the module doc)."""
    return any(not StoreLocation.parse(store).is_local for store in stores)
