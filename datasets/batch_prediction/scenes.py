"""Where a batch run's scenes come from: the committed scenes of a store (one split or all), or image
folders (one scene per folder, named after it). A `BatchScene` is small and plain, so that it travels to
Dask workers; the images are read on the worker."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datasets.image_io import codec_threads, collect_image_paths, read_image_rgb
from datasets.store.queries import pinned_store, select_scenes
from datasets.store.reader import StoreReader, read_scene_attrs

STORE_SOURCE = "store"
FOLDER_SOURCE = "folder"


@dataclass(frozen=True)
class BatchScene:
    """One scene to predict: `scene_id` names its output folder; `source` is a store or an image folder."""

    scene_id: str
    kind: str
    """STORE_SOURCE or FOLDER_SOURCE."""
    source: str
    """The store (a directory or a pinned object-store URL) or the image folder."""


def store_scenes(
    store: str | Path, split: str | None = "all", only: Sequence[str] | None = None
) -> list[BatchScene]:
    """The readable scenes of `split` ("all" or None: every one) of a store, or just `only` among them."""
    location = pinned_store(store)  # an object store: every worker reads the same snapshot
    scene_ids = select_scenes(location, split)
    if only:
        unknown = sorted(set(only) - set(scene_ids))
        if unknown:
            raise ValueError(
                f"--scenes names {', '.join(unknown)}, not readable scenes of split {split!r} of store {location}; "
                f"it has {', '.join(scene_ids[:10])}{' ...' if len(scene_ids) > 10 else ''}"
            )
        scene_ids = [s for s in scene_ids if s in set(only)]
    return [BatchScene(scene_id, STORE_SOURCE, str(location)) for scene_id in scene_ids]


def folder_scenes(folders: Sequence[str | Path]) -> list[BatchScene]:
    """One scene per image folder, named after the folder; ValueError for a missing folder or two folders
    of the same name (their outputs would land in one place)."""
    scenes: dict[str, BatchScene] = {}
    for folder in folders:
        path = Path(folder)
        if not path.is_dir():
            raise FileNotFoundError(
                f"--folders {folder} is not a folder; pass folders of images, one per scene"
            )
        scene_id = path.resolve().name
        if scene_id in scenes:
            raise ValueError(
                f"--folders {scenes[scene_id].source} and {path.resolve()} are both named {scene_id!r}; "
                "their outputs would share OUT/<name>: rename one of them"
            )
        scenes[scene_id] = BatchScene(scene_id, FOLDER_SOURCE, str(path.resolve()))
    return list(scenes.values())


def input_digest(scene: BatchScene) -> str:
    """Cheap identity of a scene's input: a store scene's source and preprocessing hashes, or a folder's
    image names, sizes and modification times. A changed input makes the scene stale."""
    if scene.kind == STORE_SOURCE:
        attrs = read_scene_attrs(scene.source, scene.scene_id)
        return f"store:{attrs.get('source_hash', '')}:{attrs.get('config_hash', '')}"
    digest = hashlib.sha256()
    for path in _folder_images(scene):
        stat = path.stat()
        digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return f"folder:{digest.hexdigest()}"


def read_views(scene: BatchScene) -> tuple[list[np.ndarray], list[str]]:
    """The scene's views as (H, W, 3) uint8 RGB arrays and their names, in view order (a store scene's
    frame order, a folder's sorted file names)."""
    if scene.kind == STORE_SOURCE:
        return _store_views(scene)
    paths = _folder_images(scene)
    # decoding releases the GIL: the worker's GPU waits less for the next scene's views
    with ThreadPoolExecutor(max_workers=codec_threads()) as pool:
        images = list(pool.map(read_image_rgb, paths))
    return images, [path.stem for path in paths]


def _folder_images(scene: BatchScene) -> list[Path]:
    return collect_image_paths([scene.source])


def _store_views(scene: BatchScene) -> tuple[list[np.ndarray], list[str]]:
    """Only the images of each frame (not depth or labels, which prediction does not need)."""
    reader = StoreReader(scene.source)
    names = reader.camera_frame_names(scene.scene_id)
    images, view_names = [], []
    for camera, index in reader.scene_attrs(scene.scene_id)["frame_order"]:
        name = names[camera][index]
        images.append(reader.read_array(scene.scene_id, camera, "images", int(index), name))
        view_names.append(name)
    return images, view_names
