"""Create a store and commit preprocessed scenes into it, one atomic directory rename per scene.

Only the flow process creates the store and edits root attrs; workers call `write_scene`, which writes
the whole scene under `_staging/` and renames it into `scenes/`. A killed worker therefore leaves at
most a staging directory, which no reader looks at and `sweep_staging` removes.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import ZstdCodec
from zarr.storage import LocalStore

from datasets.preprocess.result import FrameBlock, PreprocessedScene
from datasets.store.failures import utc_now
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


def open_or_create_store(store: Path) -> str:
    """Create the store (root group, `scenes` group, attrs) if absent; return its `store_uuid`.

    Call it in the flow process only, once per run: concurrent creation from workers would race on the
    root metadata. An existing store of another schema version is refused."""
    layout = StoreLayout(Path(store))
    if (layout.zarr_root / "zarr.json").is_file():
        root = zarr.open_group(store=LocalStore(layout.zarr_root), mode="r")
        check_schema_version(root.attrs.get("schema_version"), layout.root)
        if not layout.scenes_dir.is_dir():
            raise ValueError(f"store {layout.root} has no {SCENES_GROUP}/ group; it is not a scene store")
        return str(root.attrs["store_uuid"])
    if layout.root.exists() and any(layout.root.iterdir()):
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
    layout.root.mkdir(parents=True, exist_ok=True)
    store_uuid = uuid.uuid4().hex
    root = zarr.open_group(
        store=LocalStore(layout.zarr_root),
        mode="w",
        attributes={"schema_version": SCHEMA_VERSION, "store_uuid": store_uuid, "categories": []},
    )
    root.create_group(SCENES_GROUP)
    return store_uuid


def set_categories(store: Path, categories: list[dict], cls_sep: int | None = None) -> None:
    """Record the class vocabulary (and the panoptic id separator) in the root attrs (flow process only)."""
    layout = StoreLayout(Path(store))
    root = zarr.open_group(store=LocalStore(layout.zarr_root), mode="r+")
    check_schema_version(root.attrs.get("schema_version"), layout.root)
    updates: dict[str, Any] = {}
    if root.attrs.get("categories") != categories:
        updates["categories"] = _jsonable(categories)
    if cls_sep is not None and root.attrs.get("cls_sep") != int(cls_sep):
        updates["cls_sep"] = int(cls_sep)
    if updates:
        root.attrs.update(updates)


def sweep_staging(store: Path) -> list[str]:
    """Delete leftovers of killed or failed writers (`_staging/*`) and replaced versions (`_trash/*`),
    then the emptied folders themselves.

    Call only while no task writes: at flow start and after the last task ended (a live writer's staging
    dir must not be removed)."""
    layout = StoreLayout(Path(store))
    removed = []
    for directory in (layout.staging_dir, layout.trash_dir):
        if not directory.is_dir():
            continue
        for entry in directory.iterdir():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
        try:
            directory.rmdir()
        except OSError:
            pass  # something could not be removed; the next sweep tries again
    if removed:
        log.info("removed %d leftover staging/trash entries from %s", len(removed), layout.zarr_root)
    return removed


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


def _write_block(group: zarr.Group, block: FrameBlock) -> None:
    sub = group.create_group(block.camera, attributes={"names": list(block.names)})
    for name in _FRAME_ARRAY_SPECS:
        data = np.ascontiguousarray(getattr(block, name))
        chunk = (1, *data.shape[1:])
        shard = (min(SHARD_FRAMES, data.shape[0]), *data.shape[1:])
        array = sub.create_array(
            name,
            shape=data.shape,
            dtype=data.dtype,
            chunks=chunk,
            shards=shard,
            compressors=_compressors(name),
        )
        array[...] = data


def write_scene(
    store: Path,
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
    """Write `scene` into staging, then commit it with one rename. Returns a small summary dict.

    `made_with` (`{"config": settings as a dict, "pairs_dir": folder or None}`) lets `panst3r status`
    compare the scene against the settings it was made with.

    Timings stored: the scene's own, `extra_timings`, `write` (seconds spent here) and, when `started_at`
    (a `time.perf_counter()` value) is given, `total` up to the commit. Any older committed version of the
    scene is renamed into `_trash/` first and deleted after."""
    write_start = time.perf_counter()
    layout = StoreLayout(Path(store))
    if not layout.scenes_dir.is_dir():
        raise FileNotFoundError(f"store {layout.root} is not initialised; the flow creates it before writing")
    if scene.num_frames == 0 or not scene.blocks:
        raise ValueError(f"scene {scene.scene_id}: no frames were produced; nothing to store")
    counts = {camera: _check_block(scene.scene_id, block) for camera, block in scene.blocks.items()}
    for camera, index in scene.frame_order:
        if camera not in counts or not 0 <= index < counts[camera]:
            raise ValueError(f"scene {scene.scene_id}: frame_order entry ({camera}, {index}) has no frame")

    token = uuid.uuid4().hex
    staging = layout.staging_dir / f"{scene.scene_id}.{token}"
    staging.parent.mkdir(parents=True, exist_ok=True)
    try:
        group = zarr.open_group(store=LocalStore(staging), mode="w")
        for block in scene.blocks.values():
            _write_block(group, block)
        pairs = np.asarray(scene.pairs, dtype=np.float64).reshape(-1, 3)
        group.create_array(
            "pairs",
            shape=pairs.shape,
            dtype=pairs.dtype,
            chunks=(max(len(pairs), 1), 3),
            compressors=_compressors("pairs"),
        )
        group["pairs"][...] = pairs
        timings = {**scene.timings, **(extra_timings or {}), "write": time.perf_counter() - write_start}
        if started_at is not None:
            timings["total"] = time.perf_counter() - started_at
        committed_at = utc_now()
        group.attrs.update(
            _jsonable(
                {
                    "schema_version": SCHEMA_VERSION,
                    "scene_id": scene.scene_id,
                    "source_hash": source_hash,
                    "config_hash": config_hash,
                    "code_version": code_version,
                    "frame_order": [[camera, int(index)] for camera, index in scene.frame_order],
                    "segments": scene.segments,
                    "categories": scene.categories,
                    "num_frames": scene.num_frames,
                    "split": split,
                    "timings": timings,
                    "committed_at": committed_at,
                    "made_with": made_with or {},
                    "unknown_labels": scene.unknown_labels.to_attrs(),
                }
            )
        )
        commit_staged(layout, scene.scene_id, staging)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return {
        "scene_id": scene.scene_id,
        "frames": scene.num_frames,
        "path": str(layout.scene_dir(scene.scene_id)),
        "committed_at": committed_at,
        "timings": timings,
    }


def commit_staged(layout: StoreLayout, scene_id: str, staging: Path) -> None:
    """Move a fully written staging group to `scenes/<scene_id>` (rename is atomic on one filesystem)."""
    target = layout.scene_dir(scene_id)
    aside = None
    if target.exists():
        layout.trash_dir.mkdir(parents=True, exist_ok=True)
        aside = layout.trash_dir / f"{scene_id}.{uuid.uuid4().hex}"
        os.rename(target, aside)
    os.rename(staging, target)
    _fsync_dir(layout.scenes_dir)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _fsync_dir(directory: Path) -> None:
    # Make the rename durable; a crash after this call cannot resurrect the staging name.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
