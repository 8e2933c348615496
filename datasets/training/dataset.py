"""`StoreViewDataset`: multi-view training samples read straight from one or several scene stores.

An item is addressed like the official `BatchedRandomSampler` does: (index, resolution index,
memory_num_views[, seed]) chosen per batch by the sampler (`panst3r_core.engine.SampleKey`), so all samples
of a batch share one resolution. Every random choice of an item (views, orientation, zoom, colour jitter)
comes from its seed, so an item is the same whichever loader worker builds it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from datasets.store.icechunk_backend import needs_spawned_workers
from datasets.store.location import StoreLocation
from datasets.store.reader import StoreReader
from datasets.training.color_jitter import ColorJitter
from datasets.training.crop import crop_resize_view, view_pose
from datasets.training.pair_index import PairIndex, build_pair_index
from datasets.training.view_tuples import select_view_tuple
from datasets.training.vocabulary import class_names_from_categories, global_vocabulary
from panst3r_core.losses.targets import CLASS_SET_SEPARATOR

ImageTransform = Callable[[torch.Tensor, np.random.Generator], torch.Tensor]


def loader_worker_init(worker_id: int) -> None:
    """`DataLoader(worker_init_fn=...)`: one OpenCV thread per loader worker, as torch gives each worker one
    thread of its own; OpenCV's default (a thread per core) in every worker would oversubscribe the cores."""
    del worker_id
    cv2.setNumThreads(1)


def _sample_key(key: Any, default_memory: int) -> tuple[int, int, int, int | None]:
    """(index, resolution index, memory views, seed or None) from a SampleKey, a tuple or an int."""
    if isinstance(key, (int, np.integer)):
        return int(key), 0, default_memory, None
    values = tuple(key)
    if len(values) == 3:
        return int(values[0]), int(values[1]), int(values[2]), None
    if len(values) == 4:
        return int(values[0]), int(values[1]), int(values[2]), int(values[3])
    raise ValueError(
        f"dataset key {key!r}: expected index, (index, resolution, memory_num_views) or a SampleKey"
    )


class StoreViewDataset(Dataset):
    """Samples of `num_views` overlapping views; several stores share one global vocabulary.

    An item is a list of `num_views` dicts:
      img (3, H, W) float32 in [-1, 1]; true_shape (2,) int64 (H, W) of the returned (landscape) view;
      pan_inst_id, pan_cls_id (H, W) int32 (instance id, 0 = void; local class id into class_set);
      class_set: ';'-joined class names of the view's store, in local id order;
      camera_pose (4, 4) float32 camera-to-world (OpenCV axes; x and y swapped for a view turned landscape);
      camera_intrinsics (3, 3) float32 (COLMAP pixel convention, like the store);
      depth (H, W) float32 metres (0 = invalid); plus dataset, scene_id, frame_index, memory_num_views,
      duplicate (this view repeats an earlier one because the pair graph ran out of candidates).
    """

    def __init__(
        self,
        stores: Sequence[str | Path],
        num_views: int,
        resolutions: Sequence[Sequence[int]],
        aug_crop: int = 16,
        seed: int | None = None,
        split: str | None = None,
        transform: ImageTransform | None = ColorJitter(),
    ) -> None:
        if not stores:
            raise ValueError("data.stores is empty; pass at least one store made by `panst3r preprocess`")
        self.stores = [StoreLocation.parse(store).resolved() for store in stores]
        for store in self.stores:
            if store.is_local and not store.path.is_dir():  # an object store: StoreReader names a missing one
                raise FileNotFoundError(
                    f"store {store} does not exist; run `panst3r preprocess --store` first"
                )
        if num_views < 1:
            raise ValueError(f"num_views must be >= 1, got {num_views}")
        self.num_views = num_views
        self.resolutions = [(int(w), int(h)) for w, h in resolutions]
        self.aug_crop = aug_crop
        self.seed = seed
        self.split = split
        self.transform = transform
        self.index: PairIndex = build_pair_index(self.stores, split)
        self.store_classes: list[list[str]] = []
        self.cls_seps: list[int] = []
        self.schema_versions: list[int] = []
        for store in self.stores:
            reader = StoreReader(store)
            self.store_classes.append(class_names_from_categories(reader.categories(), store))
            self.cls_seps.append(reader.cls_sep())
            self.schema_versions.append(int(reader.schema_version))
        self.class_sets = [CLASS_SET_SEPARATOR.join(names) for names in self.store_classes]
        self.classes = global_vocabulary(self.store_classes)
        self._readers: dict[int, StoreReader] = {}
        self._matrices: dict[tuple[int, str], dict[str, dict[str, np.ndarray]]] = {}
        self._reader_pid = os.getpid()

    def __len__(self) -> int:
        return len(self.index)

    @property
    def loader_start_method(self) -> str | None:
        """How DataLoader workers must start: spawned for object stores (Icechunk cannot run in a forked
        child of a process that used it), the platform default (fork) for directories."""
        return "spawn" if needs_spawned_workers(self.stores) else None

    def __getstate__(self) -> dict[str, Any]:
        # Zarr handles stay in the process that opened them; each loader worker opens its own once.
        state = dict(self.__dict__)
        state["_readers"], state["_matrices"] = {}, {}
        return state

    def _reader(self, store: int) -> StoreReader:
        if self._reader_pid != os.getpid():
            self._readers, self._matrices, self._reader_pid = {}, {}, os.getpid()
        reader = self._readers.get(store)
        if reader is None:
            reader = self._readers[store] = StoreReader(self.stores[store])
        return reader

    def _rng(self, index: int, seed: int | None) -> np.random.Generator:
        if seed is not None:
            return np.random.default_rng(seed)
        return np.random.default_rng([self.seed if self.seed is not None else 0, index])

    def __getitem__(self, key: Any) -> list[dict[str, Any]]:
        index, resolution_index, memory_num_views, seed = _sample_key(key, self.num_views)
        if not 0 <= index < len(self):
            raise IndexError(f"sample index {index} outside [0, {len(self)})")
        resolution = self.resolutions[resolution_index]
        rng = self._rng(index, seed)
        first, second = (int(i) for i in self.index.pairs[index])
        image_ids, num_distinct = select_view_tuple(
            self.index.graph, first, second, self.num_views, memory_num_views, rng
        )
        views = []
        for position, image_id in enumerate(image_ids):
            view = self._load_view(image_id, resolution, rng)
            view["memory_num_views"] = memory_num_views
            view["duplicate"] = position >= num_distinct
            views.append(view)
        return views

    def _scene_matrices(self, store: int, scene_id: str) -> dict[str, dict[str, np.ndarray]]:
        """Per-scene cache of the small per-frame matrices (read once; pixels are read per frame)."""
        key = (store, scene_id)
        cached = self._matrices.get(key)
        if cached is None:
            cached = self._matrices[key] = self._reader(store).camera_matrices(scene_id)
        return cached

    def read_frame(self, store: int, scene_id: str, frame_index: int) -> dict[str, np.ndarray]:
        """image (H, W, 3) uint8, depth_mm (H, W) uint16, panoptic (H, W) uint32, intrinsics (3, 3),
        cam_to_world (4, 4): only the three pixel arrays are read per frame. A chunk that does not decode
        raises CorruptSceneError naming the store, scene, camera, array and frame."""
        reader = self._reader(store)
        camera, index = reader.frame_location(scene_id, frame_index)
        matrices = self._scene_matrices(store, scene_id)[camera]
        return {
            **reader.read_pixels(scene_id, frame_index),
            "intrinsics": matrices["intrinsics"][index],
            "cam_to_world": matrices["cam_to_world"][index],
        }

    def _load_view(self, image_id: int, resolution: tuple[int, int], rng: np.random.Generator) -> dict:
        store, scene_id, frame_index = self.index.image(image_id)
        frame = self.read_frame(store, scene_id, frame_index)
        view = crop_resize_view(
            frame["image"],
            frame["depth_mm"],
            [frame["panoptic"]],
            frame["intrinsics"],
            resolution,
            self.aug_crop,
            rng,
        )
        cls_sep = self.cls_seps[store]
        # Ids are split after the crop (fewer pixels); they fit int32 (RGB-encoded ids are < 2**24), which
        # halves what loader workers pass around.
        panoptic = view.labels[0].astype(np.int32)
        image = torch.from_numpy(np.array(view.image)).permute(2, 0, 1).float().div_(255.0)
        if self.transform is not None:
            image = self.transform(image, rng)
        height, width = view.image.shape[:2]
        return {
            "img": image.mul_(2.0).sub_(1.0),
            "true_shape": torch.tensor([height, width], dtype=torch.int64),
            "pan_inst_id": torch.from_numpy(panoptic // cls_sep),
            "pan_cls_id": torch.from_numpy(panoptic % cls_sep),
            "class_set": self.class_sets[store],
            "camera_pose": torch.from_numpy(view_pose(frame["cam_to_world"], view).astype(np.float32)),
            "camera_intrinsics": torch.from_numpy(view.intrinsics.astype(np.float32)),
            "depth": torch.from_numpy(view.depth.astype(np.float32) / 1000.0),
            "dataset": self.stores[store].name,
            "scene_id": scene_id,
            "frame_index": frame_index,
        }
