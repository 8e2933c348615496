"""Create a store and commit preprocessed scenes into it, one atomic step per scene.

Only the flow process creates the store and edits root attrs; workers call `write_scene`, which writes
the whole scene and commits it through the store's backend: a directory rename (`_staging/` -> `scenes/`)
or an Icechunk transaction on an object store (backend.py). A killed worker therefore leaves nothing that
a reader lists; `sweep_staging` removes a directory store's leftovers. A directory store also takes a scene
from several writers (`stage_scene`, `write_staged_frames`, `commit_staged_scene`): see below.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import ZstdCodec
from zarr.storage import LocalStore

from datasets.preprocess.result import FrameBlock, PreprocessedScene
from datasets.store.backend import backend_for
from datasets.store.failures import utc_now
from datasets.store.local_backend import LocalBackend
from datasets.store.location import StoreLocation
from datasets.store.lock import LOCK_NAME
from datasets.store.schema import (
    SCENES_GROUP,
    SCHEMA_VERSION,
    SHARD_FRAMES,
    StoreLayout,
    check_schema_version,
)

log = logging.getLogger(__name__)

# dtype and trailing shape of every per-frame array; the leading axis is the frame axis.
_FRAME_ARRAY_SPECS: dict[str, tuple[np.dtype, int]] = {
    "images": (np.dtype(np.uint8), 3),  # (F, H, W, 3)
    "depth_mm": (np.dtype(np.uint16), 2),  # (F, H, W)
    "panoptic": (np.dtype(np.uint32), 2),  # (F, H, W)
    "intrinsics": (np.dtype(np.float64), 2),  # (F, 3, 3)
    "cam_to_world": (np.dtype(np.float64), 2),  # (F, 4, 4)
}


def _compressors(name: str) -> list:
    # Measured on 1035x690 preprocessed frames (CPU): plain zstd beats blosc-zstd+bitshuffle on both
    # size and time for images (658 kB, 20 ms/frame) and depth (185 kB vs 265 kB, 5 ms vs 31 ms);
    # the mostly constant id maps shrink ~350x already at level 1 (6 ms vs 11 ms at level 3).
    # The content checksum (4 bytes a chunk) makes a flipped byte fail to decode: without it most flips
    # decoded silently into other pixels (measured: 5 of 6 single-byte flips in an image shard).
    return [ZstdCodec(level=1 if name == "panoptic" else 3, checksum=True)]


def open_or_create_store(store: str | Path | StoreLocation) -> str:
    """Create the store (root group, `scenes` group, attrs) if absent; return its `store_uuid`.

    Call it in the flow process only, once per run: concurrent creation from workers would race on the
    root metadata. An existing store of another schema version is refused."""
    backend = backend_for(store)
    if backend.exists():
        root = backend.root_group()
        check_schema_version(root.attrs.get("schema_version"), backend.describe())
        if SCENES_GROUP not in root:
            raise ValueError(
                f"store {backend.describe()} has no {SCENES_GROUP}/ group; it is not a scene store"
            )
        return str(root.attrs["store_uuid"])
    if isinstance(backend, LocalBackend):
        _refuse_strangers(backend.layout)
        backend.layout.root.mkdir(parents=True, exist_ok=True)
    store_uuid = uuid.uuid4().hex
    backend.create({"schema_version": SCHEMA_VERSION, "store_uuid": store_uuid, "categories": []})
    return store_uuid


def _refuse_strangers(layout: StoreLayout) -> None:
    if not (layout.root.exists() and any(layout.root.iterdir())):
        return
    known = {
        layout.zarr_root.name,
        layout.tables_dir.name,
        layout.failures_dir.name,
        layout.digest_cache_path.parent.name,
        LOCK_NAME,
    }
    strangers = sorted(p.name for p in layout.root.iterdir() if p.name not in known)
    if strangers:
        raise ValueError(
            f"--store {layout.root} exists and holds {', '.join(strangers[:5])}, not a scene store; "
            "pass an empty or new directory"
        )


def set_categories(
    store: str | Path | StoreLocation, categories: list[dict], cls_sep: int | None = None
) -> None:
    """Record the class vocabulary (and the panoptic id separator) in the root attrs (flow process only)."""
    backend = backend_for(store)
    root = backend.root_group()
    check_schema_version(root.attrs.get("schema_version"), backend.describe())
    updates: dict[str, Any] = {}
    if root.attrs.get("categories") != categories:
        updates["categories"] = _jsonable(categories)
    if cls_sep is not None and root.attrs.get("cls_sep") != int(cls_sep):
        updates["cls_sep"] = int(cls_sep)
    if updates:
        backend.update_root_attrs(updates)


def sweep_staging(store: str | Path | StoreLocation) -> list[str]:
    """Delete leftovers of killed or failed writers (a directory's `_staging/*`) and replaced versions
    (`_trash/*`), then the emptied folders themselves; an object store has none (see its backend).

    Call only while no task writes: at flow start and after the last task ended (a live writer's staging
    dir must not be removed)."""
    return backend_for(store).sweep()


def _jsonable(value: Any) -> Any:
    """Turn numpy scalars/arrays and tuples into plain JSON types for zarr attrs."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def _check_block(scene_id: str, block: FrameBlock) -> int:
    num = len(block.names)
    if num == 0:
        raise ValueError(f"scene {scene_id}: camera {block.camera!r} has no frames; nothing to store")
    for name, (dtype, trailing) in _FRAME_ARRAY_SPECS.items():
        array = getattr(block, name)
        if array.dtype != dtype or array.shape[0] != num or array.ndim != trailing + 1:
            raise ValueError(
                f"scene {scene_id}: {block.camera}/{name} has dtype {array.dtype} shape {array.shape}; "
                f"expected {dtype} with {num} frames and {trailing + 1} dims"
            )
    return num


def _frame_shape(name: str, frames: int, height: int, width: int) -> tuple[int, ...]:
    trailing = {"images": (height, width, 3), "intrinsics": (3, 3), "cam_to_world": (4, 4)}
    return (frames, *trailing.get(name, (height, width)))


def _create_block(group: zarr.Group, camera: str, names: list[str], height: int, width: int) -> zarr.Group:
    """A camera's group with its empty frame arrays: one frame a chunk, SHARD_FRAMES frames a shard (the one
    owner of these settings, so that a scene written whole and one written in frame chunks are identical)."""
    sub = group.create_group(camera, attributes={"names": list(names)})
    for name, (dtype, _) in _FRAME_ARRAY_SPECS.items():
        shape = _frame_shape(name, len(names), height, width)
        sub.create_array(
            name,
            shape=shape,
            dtype=dtype,
            chunks=(1, *shape[1:]),
            shards=(min(SHARD_FRAMES, shape[0]), *shape[1:]),
            compressors=_compressors(name),
        )
    return sub


def _write_block(group: zarr.Group, block: FrameBlock) -> None:
    height, width = block.depth_mm.shape[1:]
    sub = _create_block(group, block.camera, block.names, height, width)
    for name in _FRAME_ARRAY_SPECS:
        sub[name][...] = np.ascontiguousarray(getattr(block, name))


def _write_pairs(group: zarr.Group, pairs: np.ndarray) -> None:
    pairs = np.asarray(pairs, dtype=np.float64).reshape(-1, 3)
    group.create_array(
        "pairs",
        shape=pairs.shape,
        dtype=pairs.dtype,
        chunks=(max(len(pairs), 1), 3),
        compressors=_compressors("pairs"),
    )
    group["pairs"][...] = pairs


def write_scene(
    store: str | Path | StoreLocation,
    scene: PreprocessedScene,
    *,
    source_hash: str,
    config_hash: str,
    code_version: str,
    split: str = "",
    extra_timings: dict[str, float] | None = None,
    started_at: float | None = None,
    made_with: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write `scene` and commit it in one atomic step (a rename, or a transaction on an object store).
    Returns a small summary dict.

    `made_with` (`{"config": settings as a dict, "pairs_dir": folder or None}`) lets `panst3r status`
    compare the scene against the settings it was made with.

    Timings stored: the scene's own, `extra_timings`, `write` (seconds spent here) and, when `started_at`
    (a `time.perf_counter()` value) is given, `total` up to the commit, and `commit`, the seconds of the
    commit itself. Any older committed version of the scene is replaced in the same step."""
    write_start = time.perf_counter()
    backend = backend_for(store)
    _check_initialised(backend)
    if scene.num_frames == 0 or not scene.blocks:
        raise ValueError(f"scene {scene.scene_id}: no frames were produced; nothing to store")
    counts = {camera: _check_block(scene.scene_id, block) for camera, block in scene.blocks.items()}
    for camera, index in scene.frame_order:
        if camera not in counts or not 0 <= index < counts[camera]:
            raise ValueError(f"scene {scene.scene_id}: frame_order entry ({camera}, {index}) has no frame")

    def write_frames(group: zarr.Group) -> None:
        for block in scene.blocks.values():
            _write_block(group, block)

    timings = {**scene.timings, **(extra_timings or {})}
    identity = _identity(source_hash, config_hash, code_version, split, made_with)
    return _commit(
        backend,
        lambda fill: backend.commit_scene(scene.scene_id, fill),
        scene,
        write_frames,
        timings,
        identity,
        write_start,
        started_at,
    )


def _check_initialised(backend) -> None:
    if isinstance(backend, LocalBackend) and not backend.layout.scenes_dir.is_dir():
        raise FileNotFoundError(
            f"store {backend.layout.root} is not initialised; the flow creates it before writing"
        )


def _identity(
    source_hash: str, config_hash: str, code_version: str, split: str, made_with: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "source_hash": source_hash,
        "config_hash": config_hash,
        "code_version": code_version,
        "split": split,
        "made_with": made_with or {},
    }


def _commit(
    backend,
    commit: Callable[[Callable[[zarr.Group], None]], None],
    scene: PreprocessedScene,
    write_frames: Callable[[zarr.Group], None],
    timings: dict[str, float],
    identity: dict[str, Any],
    write_start: float,
    started_at: float | None,
) -> dict[str, Any]:
    """Fill the scene's group (frames, pairs, attrs last) through `commit`, which makes it visible in one step;
    the summary of write_scene."""
    moments: dict[str, Any] = {}

    def fill(group: zarr.Group) -> None:
        write_frames(group)
        _write_pairs(group, scene.pairs)
        # Frames written earlier by chunk tasks arrive with their own write seconds: add this step's.
        timings["write"] = timings.get("write", 0.0) + time.perf_counter() - write_start
        if started_at is not None:
            timings["total"] = time.perf_counter() - started_at
        moments["committed_at"] = utc_now()
        group.attrs.update(_jsonable(_scene_attrs(scene, moments["committed_at"], timings, **identity)))
        moments["commit_started"] = time.perf_counter()

    commit(fill)
    commit_seconds = time.perf_counter() - moments["commit_started"]
    return {
        "scene_id": scene.scene_id,
        "frames": scene.num_frames,
        "path": backend.chunk_location(f"{SCENES_GROUP}/{scene.scene_id}"),
        "committed_at": moments["committed_at"],
        "timings": timings,
        "commit_seconds": commit_seconds,
    }


# ---------------------------------------------------------------------- a scene written in frame chunks
# Several tasks write one scene: the flow stages the scene's empty arrays, each task writes whole shards of
# frames into them, and one last task writes pairs and attrs and commits by the same rename as write_scene.
# Only a directory store supports it: an Icechunk session is one writer's, so that backend keeps one task
# per scene.


@dataclass(frozen=True)
class CameraLayout:
    """The frames of one camera of a scene, known before any is processed: names and output size."""

    camera: str
    names: tuple[str, ...]
    height: int
    width: int


def supports_staged_scenes(store: str | Path | StoreLocation) -> bool:
    return isinstance(backend_for(store), LocalBackend)


def stage_scene(store: str | Path | StoreLocation, scene_id: str, cameras: list[CameraLayout]) -> str:
    """Create the scene's invisible staging group with every camera's empty frame arrays; its name, for
    `write_staged_frames` and `commit_staged_scene`. Flow process only (one creator of the metadata)."""
    backend = _staging_backend(store)
    _check_initialised(backend)
    staging = backend.new_staging(scene_id)
    group = zarr.open_group(store=LocalStore(staging), mode="w")
    for layout in cameras:
        _create_block(group, layout.camera, list(layout.names), layout.height, layout.width)
    return staging.name


def write_staged_frames(store: str | Path | StoreLocation, staging: str, block: FrameBlock, start: int) -> None:
    """Write `block`'s frames at `start..` of its camera's arrays in the staging group `staging`.

    `start` is a multiple of SHARD_FRAMES and the block ends on a shard boundary or at the camera's last
    frame, so that concurrent writers of one scene never share a shard file."""
    assert start % SHARD_FRAMES == 0, f"chunk start {start} is not on a shard boundary"
    group = zarr.open_group(store=LocalStore(_staging_backend(store).staging_path(staging)), mode="r+")
    sub = group[block.camera]
    stop = start + len(block.names)
    total = sub["images"].shape[0]
    assert stop == total or stop % SHARD_FRAMES == 0, f"chunk end {stop} splits a shard of {total} frames"
    for name in _FRAME_ARRAY_SPECS:
        sub[name][start:stop] = np.ascontiguousarray(getattr(block, name))


def staged_frames(store: str | Path | StoreLocation, staging: str) -> zarr.Group:
    """The staging group, read-only (the commit step reads depths back for co-visibility pairs)."""
    path = _staging_backend(store).staging_path(staging)
    return zarr.open_group(store=LocalStore(path, read_only=True), mode="r")


def commit_staged_scene(
    store: str | Path | StoreLocation,
    staging: str,
    scene: PreprocessedScene,
    *,
    source_hash: str,
    config_hash: str,
    code_version: str,
    split: str = "",
    started_at: float | None = None,
    made_with: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write pairs and attrs into the staging group whose frames the chunk tasks wrote, and commit it as
    `write_scene` does (same attrs, same summary). `scene.blocks` is empty: the frames are already there;
    `scene.timings` holds the chunks' summed stage seconds."""
    write_start = time.perf_counter()
    backend = _staging_backend(store)
    return _commit(
        backend,
        lambda fill: backend.commit_prepared(scene.scene_id, staging, fill),
        scene,
        lambda group: None,
        dict(scene.timings),
        _identity(source_hash, config_hash, code_version, split, made_with),
        write_start,
        started_at,
    )


def _staging_backend(store: str | Path | StoreLocation) -> LocalBackend:
    backend = backend_for(store)
    if not isinstance(backend, LocalBackend):
        raise ValueError(f"store {backend.describe()}: only a directory store takes a scene in frame chunks")
    return backend


def _scene_attrs(scene: PreprocessedScene, committed_at: str, timings: dict[str, float], **identity) -> dict:
    """The group attributes of a committed scene (SCENE_ATTR_KEYS)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "scene_id": scene.scene_id,
        **identity,
        "frame_order": [[camera, int(index)] for camera, index in scene.frame_order],
        "segments": scene.segments,
        "categories": scene.categories,
        "num_frames": scene.num_frames,
        "timings": timings,
        "committed_at": committed_at,
        "unknown_labels": scene.unknown_labels.to_attrs(),
    }
