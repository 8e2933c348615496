"""Read-only access to a scene store, for the training Dataset, the tables and the legacy export."""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr

from datasets.store.backend import StoreRef, StoreVersion, backend_for
from datasets.store.frame_chunks import FrameLayout, frame_layout, read_frame
from datasets.store.integrity import ChunkAddress, open_metadata, read_chunk
from datasets.store.local_backend import LocalBackend
from datasets.store.location import StoreLocation
from datasets.store.schema import (
    DEFAULT_CLS_SEP,
    FRAME_ARRAYS,
    ICECHUNK_DIRNAME,
    SCENES_GROUP,
    ZARR_DIRNAME,
    check_schema_version,
)

PIXEL_ARRAYS = ("images", "depth_mm", "panoptic")
"""The per-frame arrays worth reading one frame at a time; the small matrices are read per camera."""


def read_scene_attrs(store: StoreRef, scene_id: str) -> dict[str, Any]:
    """A committed scene group's attributes (cheap: one small file, or the snapshot's metadata)."""
    return backend_for(store).scene_attrs(scene_id)


class StoreReader:
    """Committed scenes of one store, at one version: a directory as it is, an object store at its pinned
    snapshot or at the newest one when the reader opens. Array handles are opened once per scene and
    cached, so random frame reads cost only the chunk reads (about 0.8 ms a frame of 256x192 from a directory
    store, read straight from its shard files; about 3.4 ms through zarr, as object stores are read).

    Frame indices are in the scene's selection order (`frame_order`), the order the pairs refer to."""

    def __init__(self, store: StoreRef):
        self.backend = backend_for(store)
        self.location = self.backend.location
        if not self.backend.exists():
            raise FileNotFoundError(
                f"no scene store at {self.location} (missing {_root_name(self.location)}); "
                "run `panst3r preprocess --store` to create it"
            )
        self._root = self.backend.root_group()
        self.schema_version = self._root.attrs.get("schema_version")
        check_schema_version(self.schema_version, self.location)
        self.store_uuid = str(self._root.attrs.get("store_uuid", ""))
        self._attrs: dict[str, dict[str, Any]] = {}
        self._arrays: dict[str, dict[str, dict[str, zarr.Array]]] = {}
        self._names: dict[str, dict[str, list[str]]] = {}
        self._layouts: dict[tuple[str, str, str], FrameLayout | None] = {}

    def scene_ids(self) -> list[str]:
        """Committed scenes, sorted. Staging and trash directories are never listed."""
        return self.backend.committed_scene_ids()

    def version(self) -> StoreVersion | None:
        """The snapshot this reader reads (object stores); None for a directory."""
        return self.backend.snapshot()

    def categories(self) -> list[dict]:
        """`[{id, name, isthing}]` of the class vocabulary (from the root attrs, else from a scene)."""
        categories = self._root.attrs.get("categories") or []
        if not categories:
            for scene_id in self.scene_ids():
                categories = self.scene_attrs(scene_id).get("categories") or []
                if categories:
                    break
        return list(categories)

    def cls_sep(self) -> int:
        """Panoptic id = instance * cls_sep + class (the root attr preprocessing records, else the default)."""
        return int(self._root.attrs.get("cls_sep", DEFAULT_CLS_SEP))

    def scene_attrs(self, scene_id: str) -> dict[str, Any]:
        if scene_id not in self._attrs:
            attrs = self.backend.scene_attrs(scene_id)
            check_schema_version(attrs.get("schema_version"), self.location)
            self._attrs[scene_id] = attrs
        return self._attrs[scene_id]

    def num_frames(self, scene_id: str) -> int:
        return int(self.scene_attrs(scene_id)["num_frames"])

    def _open_scene(self, scene_id: str) -> dict[str, dict[str, zarr.Array]]:
        if scene_id not in self._arrays:
            attrs = self.scene_attrs(scene_id)
            scene_dir = f"{SCENES_GROUP}/{scene_id}"
            group = self._root[scene_dir]
            where = self.backend.chunk_location
            cameras = sorted({camera for camera, _ in attrs["frame_order"]})
            arrays, names = {}, {}
            for camera in cameras:
                sub = open_metadata(lambda c=camera: group[c], where(f"{scene_dir}/{camera}/zarr.json"), scene_id)
                arrays[camera] = {
                    name: open_metadata(
                        lambda n=name, s=sub: s[n], where(f"{scene_dir}/{camera}/{name}/zarr.json"), scene_id
                    )
                    for name in FRAME_ARRAYS
                }
                names[camera] = list(sub.attrs["names"])
            pairs_json = where(f"{scene_dir}/pairs/zarr.json")
            arrays["_scene"] = {"pairs": open_metadata(lambda: group["pairs"], pairs_json, scene_id)}
            self._arrays[scene_id], self._names[scene_id] = arrays, names
        return self._arrays[scene_id]

    def array(self, scene_id: str, camera: str, name: str) -> zarr.Array:
        """The handle of one array (metadata only; read data through `read_array`)."""
        return self._open_scene(scene_id)[camera][name]

    def read_array(
        self, scene_id: str, camera: str, name: str, index: int | None = None, frame_name: str | None = None
    ) -> np.ndarray:
        """Frame `index` of one camera's array (along that camera's frame axis), or the whole array; a
        chunk that does not decode raises CorruptSceneError naming scene, camera, array, frame and file.
        `camera` "_scene" holds the scene-wide arrays (`pairs`)."""
        array = self.array(scene_id, camera, name)
        if index is not None:
            direct = self._read_directly(scene_id, camera, name, index)
            if direct is not None:
                return direct
        names = tuple(self._names[scene_id].get(camera, ())) if index is None else ()
        array_location = self.backend.chunk_location(f"{SCENES_GROUP}/{scene_id}/{camera}/{name}")
        address = ChunkAddress(str(self.location), array_location, scene_id, camera, name, index, frame_name, names)
        return read_chunk(array, address)

    def _read_directly(self, scene_id: str, camera: str, name: str, index: int) -> np.ndarray | None:
        """Frame `index` read from its shard file (`datasets.store.frame_chunks`: about 20x cheaper than
        through zarr) when the store is a directory and the array has the store's layout; None otherwise,
        or when the read fails, so that zarr reads it and names any damage."""
        key = (scene_id, camera, name)
        if key not in self._layouts:
            self._layouts[key] = None
            if isinstance(self.backend, LocalBackend):
                relative = f"{SCENES_GROUP}/{scene_id}/{camera}/{name}"
                directory = self.backend.layout.zarr_root / relative
                self._layouts[key] = frame_layout(directory)
        layout = self._layouts[key]
        if layout is None or not 0 <= index < self.array(scene_id, camera, name).shape[0]:
            return None
        try:
            return read_frame(layout, index)
        except (OSError, ValueError, RuntimeError):
            return None

    def frame_location(self, scene_id: str, frame_index: int) -> tuple[str, int]:
        """(camera, index within that camera's arrays) of a frame in selection order."""
        order = self.scene_attrs(scene_id)["frame_order"]
        if not 0 <= frame_index < len(order):
            raise IndexError(
                f"scene {scene_id} has {len(order)} frames; frame_index {frame_index} is out of range"
            )
        camera, index = order[frame_index]
        return str(camera), int(index)

    def read_pixels(self, scene_id: str, frame_index: int) -> dict[str, np.ndarray]:
        """One frame's image (H,W,3) uint8, depth_mm (H,W) uint16 and panoptic (H,W) uint32: three chunk
        reads, for loaders that keep the per-camera matrices (`camera_matrices`) themselves."""
        camera, index = self.frame_location(scene_id, frame_index)
        name = self.camera_frame_names(scene_id)[camera][index]
        pixels = {array: self.read_array(scene_id, camera, array, index, name) for array in PIXEL_ARRAYS}
        pixels["image"] = pixels.pop("images")
        return pixels

    def read_frame(self, scene_id: str, frame_index: int) -> dict[str, Any]:
        """One frame: image (H,W,3) uint8, depth_mm (H,W) uint16, panoptic (H,W) uint32,
        intrinsics (3,3) f8, cam_to_world (4,4) f8, name str, camera str."""
        camera, index = self.frame_location(scene_id, frame_index)
        name = self.camera_frame_names(scene_id)[camera][index]
        frame: dict[str, Any] = self.read_pixels(scene_id, frame_index)
        for array in ("intrinsics", "cam_to_world"):
            frame[array] = self.read_array(scene_id, camera, array, index, name)
        frame["name"] = name
        frame["camera"] = camera
        return frame

    def camera_matrices(self, scene_id: str) -> dict[str, dict[str, np.ndarray]]:
        """`{camera: {"intrinsics": (F,3,3), "cam_to_world": (F,4,4)}}`, whole (they are small)."""
        arrays = self._open_scene(scene_id)
        return {
            camera: {name: self.read_array(scene_id, camera, name) for name in ("intrinsics", "cam_to_world")}
            for camera in arrays
            if camera != "_scene"
        }

    def camera_frame_names(self, scene_id: str) -> dict[str, list[str]]:
        """`{camera: [frame names in that camera's array order]}`."""
        self._open_scene(scene_id)
        return {camera: list(names) for camera, names in self._names[scene_id].items()}

    def pairs(self, scene_id: str) -> np.ndarray:
        """(P, 3) float64: frame index a, frame index b (selection order), overlap."""
        return self.read_array(scene_id, "_scene", "pairs")

    def frame_names(self, scene_id: str) -> list[str]:
        """Frame names in selection order."""
        names = self.camera_frame_names(scene_id)
        return [names[camera][index] for camera, index in self.scene_attrs(scene_id)["frame_order"]]

    def read_scene_arrays(self, scene_id: str) -> dict[str, dict[str, Any]]:
        """Whole arrays per camera: `{camera: {images, depth_mm, panoptic, intrinsics, cam_to_world, names}}`
        (leading axis = frames of that camera); selection order is `scene_attrs(id)["frame_order"]`."""
        arrays = self._open_scene(scene_id)
        out: dict[str, dict[str, Any]] = {}
        for camera, handles in arrays.items():
            if camera == "_scene":
                continue
            out[camera] = {name: self.read_array(scene_id, camera, name) for name in handles}
            out[camera]["names"] = list(self._names[scene_id][camera])
        return out

    def camera_shapes(self, scene_id: str) -> dict[str, tuple[int, ...]]:
        """`{camera: (F, H, W)}` from the array metadata, without reading pixels."""
        arrays = self._open_scene(scene_id)
        return {
            camera: tuple(handles["depth_mm"].shape)
            for camera, handles in arrays.items()
            if camera != "_scene"
        }


def _root_name(location: StoreLocation) -> str:
    return f"{ZARR_DIRNAME}/zarr.json" if location.is_local else f"an Icechunk repository {ICECHUNK_DIRNAME}/"
