"""A store in a local directory: `scenes.zarr/` committed one scene at a time by a directory rename.

A scene is written under `scenes.zarr/_staging/<id>.<uuid>/` and renamed into `scenes/<id>` (rename is
atomic on one filesystem); an older version is renamed into `_trash/` first and deleted after. A killed
writer leaves at most a staging directory, which no reader looks at and `sweep` removes. Files beside the
tree are written to a temporary name and renamed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Hashable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import zarr
from zarr.storage import LocalStore

from datasets.atomic_dirs import remove_leftovers, swap_in_directory
from datasets.store.backend import StoreBackend, StoreVersion
from datasets.store.integrity import open_metadata
from datasets.store.location import StoreLocation
from datasets.store.lock import store_lock
from datasets.store.schema import SCENES_GROUP, StoreLayout

log = logging.getLogger(__name__)


class LocalBackend(StoreBackend):
    def __init__(self, location: StoreLocation):
        self.location = location
        self.layout = StoreLayout(location.path)

    def exists(self) -> bool:
        return (self.layout.zarr_root / "zarr.json").is_file()

    def create(self, attributes: dict[str, Any]) -> None:
        root = zarr.open_group(store=LocalStore(self.layout.zarr_root), mode="w", attributes=attributes)
        root.create_group(SCENES_GROUP)

    def root_group(self) -> zarr.Group:
        return zarr.open_group(store=LocalStore(self.layout.zarr_root, read_only=True), mode="r")

    def update_root_attrs(self, updates: dict[str, Any]) -> None:
        zarr.open_group(store=LocalStore(self.layout.zarr_root), mode="r+").attrs.update(updates)

    def committed_scene_ids(self) -> list[str]:
        return self.layout.committed_scene_ids()

    def has_scene(self, scene_id: str) -> bool:
        return (self.layout.scene_dir(scene_id) / "zarr.json").is_file()

    def scene_attrs(self, scene_id: str) -> dict[str, Any]:
        """Read straight from the group's zarr.json (cheap: one small file)."""
        path = self.layout.scene_dir(scene_id) / "zarr.json"
        if not path.is_file():
            raise ValueError(f"store {self.layout.root} has no committed scene {scene_id!r}")
        return open_metadata(lambda: json.loads(path.read_text()).get("attributes", {}), path, scene_id)

    def scene_token(self, scene_id: str) -> Hashable:
        # A re-commit renames a new directory in: its zarr.json has another inode and mtime.
        stat = (self.layout.scene_dir(scene_id) / "zarr.json").stat()
        return (stat.st_ino, stat.st_mtime_ns)

    def new_staging(self, scene_id: str) -> Path:
        """A fresh staging directory name for `scene_id` (its parent created)."""
        self.layout.staging_dir.mkdir(parents=True, exist_ok=True)
        return self.layout.staging_dir / f"{scene_id}.{uuid.uuid4().hex}"

    def staging_path(self, name: str) -> Path:
        """An existing staging group `name` (from `new_staging`); FileNotFoundError once swept or committed."""
        path = self.layout.staging_dir / name
        if not (path / "zarr.json").is_file():
            raise FileNotFoundError(f"staging group {path} is gone (swept, or already committed)")
        return path

    def commit_prepared(self, scene_id: str, name: str, fill: Callable[[zarr.Group], None]) -> None:
        """`commit_scene` for a staging group that chunk tasks already filled with frames. On failure the
        group stays for a retry of this step; the flow's sweep removes it once nothing writes."""
        staging = self.staging_path(name)
        fill(zarr.open_group(store=LocalStore(staging), mode="r+"))
        commit_staged(self.layout, scene_id, staging)

    def commit_scene(self, scene_id: str, fill: Callable[[zarr.Group], None]) -> None:
        staging = self.new_staging(scene_id)
        try:
            fill(zarr.open_group(store=LocalStore(staging), mode="w"))
            commit_staged(self.layout, scene_id, staging)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def sweep(self) -> list[str]:
        removed = remove_leftovers([self.layout.staging_dir, self.layout.trash_dir])
        if removed:
            log.info("removed %d leftover staging/trash entries from %s", len(removed), self.layout.zarr_root)
        return removed

    def lock(self) -> AbstractContextManager[None]:
        return store_lock(self.layout.root)

    def read_file(self, key: str) -> bytes | None:
        path = self.layout.root / key
        return path.read_bytes() if path.is_file() else None

    def write_file(self, key: str, data: bytes) -> None:
        target = self.layout.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)

    def delete_file(self, key: str) -> None:
        (self.layout.root / key).unlink(missing_ok=True)

    def list_files(self, folder: str) -> list[str]:
        directory = self.layout.root / folder
        if not directory.is_dir():
            return []
        return sorted(
            f"{folder}/{p.name}" for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")
        )

    def describe(self, key: str = "") -> str:
        return str(self.layout.root / key) if key else str(self.layout.root)

    def chunk_location(self, relative: str) -> str:
        return str(self.layout.zarr_root / relative)

    def snapshot(self) -> StoreVersion | None:
        return None


def commit_staged(layout: StoreLayout, scene_id: str, staging: Path) -> None:
    """Move a fully written staging group to `scenes/<scene_id>` (rename is atomic on one filesystem)."""
    swap_in_directory(staging, layout.scene_dir(scene_id), layout.trash_dir)
