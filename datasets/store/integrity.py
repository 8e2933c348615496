"""Corruption in a committed scene, named: which scene, camera, array, frame and file, and the fix.

Chunks are written with a zstd content checksum (see writer.py), so a flipped byte fails to decode
instead of decoding into other pixels; shard indexes carry a CRC32C. Readers wrap every metadata open
and chunk read in these helpers, which turn a codec or JSON error into one CorruptSceneError that says
where the damage is and that re-running preprocess on that scene rewrites it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

T = TypeVar("T")


def redo_hint(scene_ids: list[str] | str) -> str:
    """The fix for damaged scenes: preprocess rewrites them from their inputs."""
    names = " ".join([scene_ids] if isinstance(scene_ids, str) else scene_ids)
    return f"re-run `panst3r preprocess` with the same --root and --store plus `--redo {names}` to rewrite it"


class CorruptSceneError(ValueError):
    """Bytes or metadata of a committed scene cannot be read back; the message names where and the fix.

    One positional argument, so that torch's DataLoader can re-raise it from a loader worker."""

    def __init__(self, message: str, scene_id: str | None = None):
        super().__init__(message)
        self.scene_id = scene_id


@dataclass(frozen=True)
class ChunkAddress:
    """Where a read happens: `frame` is the index along the camera's frame axis, None for a whole array."""

    store: str
    """The store as named in messages (a path or a URL with its snapshot)."""
    array_location: str
    """The array's folder (local) or its place in the repository (object store), for messages."""
    scene_id: str
    camera: str
    array: str
    frame: int | None = None
    frame_name: str | None = None
    frame_names: tuple[str, ...] = ()
    """Every frame's name, to name the damaged one when a whole-array read fails."""

    def describe(self) -> str:
        where = f"scene {self.scene_id}, camera {self.camera}, array {self.array}"
        if self.frame is not None:
            where += f", frame {self.frame}" + (f" ({self.frame_name})" if self.frame_name else "")
        return where


def _problem(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def chunk_file(array: zarr.Array, address: ChunkAddress) -> str:
    """The file (key) holding `address.frame` (its shard), or the array's folder for whole-array reads."""
    if address.frame is None:
        return address.array_location
    grid = array.shards or array.chunks
    coords = (address.frame // grid[0],) + (0,) * (array.ndim - 1)
    return f"{address.array_location}/{array.metadata.encode_chunk_key(coords)}"


def read_chunk(array: zarr.Array, address: ChunkAddress) -> np.ndarray:
    """`array[address.frame]` (or the whole array), CorruptSceneError naming it if it does not decode."""
    try:
        return np.asarray(array[...] if address.frame is None else array[address.frame])
    except Exception as exc:  # noqa: BLE001 - codecs raise RuntimeError, ValueError, ... for damaged bytes
        if address.frame is None and array.ndim and array.shape[0] > 1:
            for frame in range(array.shape[0]):  # name the first frame that does not decode
                name = address.frame_names[frame] if frame < len(address.frame_names) else None
                read_chunk(array, replace(address, frame=frame, frame_name=name))
        raise CorruptSceneError(
            f"store {address.store}: {address.describe()} is corrupt ({_problem(exc)}) in "
            f"{chunk_file(array, address)}; {redo_hint(address.scene_id)}",
            address.scene_id,
        ) from exc


def open_metadata(open_node: Callable[[], T], metadata_file: Path | str, scene_id: str) -> T:
    """`open_node()` (a zarr group or array open), CorruptSceneError naming its zarr.json if that fails."""
    try:
        return open_node()
    except Exception as exc:  # noqa: BLE001 - JSON, KeyError and zarr's own errors for damaged metadata
        raise CorruptSceneError(
            f"{metadata_file} cannot be read ({_problem(exc)}): the metadata of scene {scene_id} is damaged "
            f"or missing; {redo_hint(scene_id)}",
            scene_id,
        ) from exc


def has_checksums(array: zarr.Array) -> bool:
    """Whether every zstd codec of `array` (inside its shards too) stores a content checksum; arrays
    written before checksums were turned on can hide a flipped byte."""
    codecs = list(array.metadata.codecs)
    found = False
    while codecs:
        codec = codecs.pop()
        codecs.extend(getattr(codec, "codecs", ()))  # a sharding codec's inner chain
        if isinstance(codec, ZstdCodec):
            if not codec.checksum:
                return False
            found = True
    return found
