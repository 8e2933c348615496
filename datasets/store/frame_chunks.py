"""One frame of a store array read straight from its shard file, without zarr's asynchronous runtime.

Why: a training loader reads three one-frame chunks per view. Through zarr 3 each read costs about 1.1 ms of
event-loop and thread hand-offs (2 cores; more on a host whose loader workers share 16), for about 0.05 ms of
decoding at 256x192, which made the reads over half of a loader worker's time.

The store writes every per-frame array with one layout (`datasets.store.writer`): a `sharding_indexed` codec
over one-frame inner chunks, inner codecs `bytes` (little endian) then `zstd` with its content checksum, the
shard index (`bytes` little endian, then `crc32c`) at the end of the shard, the default chunk key encoding
with "/". `frame_layout` accepts exactly that layout from an array's zarr.json and returns None for anything
else; `read_frame` follows the Zarr v3 sharding specification for it. Callers read through zarr whenever
this returns None or raises, so damaged bytes still get the store's own error (`integrity.read_chunk`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np
from numcodecs import Zstd

EMPTY_CHUNK = np.uint64(2**64 - 1)
"""An index entry (offset, nbytes) of two all-ones words: the chunk was never written (fill value)."""
INDEX_ENTRY_BYTES = 16
CHECKSUM_BYTES = 4

_ZSTD = Zstd()


@dataclass(frozen=True)
class FrameLayout:
    """What a direct read needs to know about one array with the store's layout."""

    directory: Path
    """The array's folder (holding zarr.json and c/)."""
    shard_frames: int
    frame_shape: tuple[int, ...]
    """Shape of one frame, without the frame axis."""
    dtype: np.dtype
    """With its byte order (little endian)."""

    def shard_path(self, shard: int) -> Path:
        """Default chunk key encoding with "/": c/<shard>/0/0... (one shard across the other axes)."""
        return self.directory.joinpath("c", str(shard), *("0" for _ in self.frame_shape))

    @property
    def index_bytes(self) -> int:
        return self.shard_frames * INDEX_ENTRY_BYTES + CHECKSUM_BYTES


def frame_layout(directory: Path) -> FrameLayout | None:
    """The layout of the array in `directory` when its zarr.json describes exactly the store's (see the
    module's docstring), else None (also for a missing or unreadable zarr.json: zarr then names it)."""
    try:
        meta = json.loads((Path(directory) / "zarr.json").read_text())
        shape, dtype = tuple(meta["shape"]), np.dtype(meta["data_type"])
        shard_shape = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    codecs = meta.get("codecs") or []
    if meta.get("zarr_format") != 3 or len(codecs) != 1 or codecs[0].get("name") != "sharding_indexed":
        return None
    if meta.get("chunk_key_encoding") != {"name": "default", "configuration": {"separator": "/"}}:
        return None
    sharding = codecs[0].get("configuration", {})
    if not shape or tuple(sharding.get("chunk_shape", ())) != (1, *shape[1:]) or shard_shape[1:] != shape[1:]:
        return None
    if sharding.get("index_location") != "end" or not _is_little_endian_crc32c_index(sharding):
        return None
    if not _is_bytes_then_zstd(sharding.get("codecs") or [], dtype) or not _is_zero_fill(meta):
        return None
    return FrameLayout(Path(directory), int(shard_shape[0]), shape[1:], dtype.newbyteorder("<"))


def _is_little_endian_crc32c_index(sharding: dict[str, Any]) -> bool:
    return sharding.get("index_codecs") == [
        {"name": "bytes", "configuration": {"endian": "little"}},
        {"name": "crc32c"},
    ]


def _is_bytes_then_zstd(codecs: list[dict[str, Any]], dtype: np.dtype) -> bool:
    if len(codecs) != 2 or codecs[0].get("name") != "bytes" or codecs[1].get("name") != "zstd":
        return False
    endian = codecs[0].get("configuration", {}).get("endian")
    return endian == "little" or (endian is None and dtype.itemsize == 1)


def _is_zero_fill(meta: dict[str, Any]) -> bool:
    return meta.get("fill_value") in (0, 0.0, False)


def read_frame(layout: FrameLayout, frame: int) -> np.ndarray:
    """Frame `frame` (frame_shape, dtype). Raises (OSError, ValueError, RuntimeError) for a missing or
    damaged shard; the caller then reads through zarr, which gives the fill value or the store's error."""
    shard, position = divmod(frame, layout.shard_frames)
    descriptor = os.open(layout.shard_path(shard), os.O_RDONLY)
    try:
        size = os.fstat(descriptor).st_size
        data_end = size - layout.index_bytes
        if data_end < 0:
            raise ValueError(f"shard {shard} is {size} bytes, shorter than its index")
        offset, nbytes = _index_entry(os.pread(descriptor, layout.index_bytes, data_end), position)
        if offset == EMPTY_CHUNK and nbytes == EMPTY_CHUNK:
            return np.zeros(layout.frame_shape, layout.dtype)
        if offset + nbytes > data_end:
            raise ValueError(f"shard {shard}: chunk {position} ends after the data ({offset}+{nbytes})")
        compressed = os.pread(descriptor, int(nbytes), int(offset))
    finally:
        os.close(descriptor)
    decoded = _ZSTD.decode(compressed)  # checks zstd's content checksum
    expected = int(np.prod(layout.frame_shape)) * layout.dtype.itemsize
    if len(decoded) != expected:
        raise ValueError(f"shard {shard}: chunk {position} decodes to {len(decoded)} bytes, not {expected}")
    # A writeable copy, as zarr returns: callers may modify what they read.
    return np.frombuffer(decoded, dtype=layout.dtype).reshape(layout.frame_shape).copy()


def _index_entry(index: bytes, position: int) -> tuple[np.uint64, np.uint64]:
    """(offset, nbytes) of inner chunk `position`, after checking the index's crc32c."""
    body, stored = index[:-CHECKSUM_BYTES], index[-CHECKSUM_BYTES:]
    if google_crc32c.value(body) != int.from_bytes(stored, "little"):
        raise ValueError("shard index checksum mismatch")
    entries = np.frombuffer(body, dtype="<u8").reshape(-1, 2)
    offset, nbytes = entries[position]
    return offset, nbytes
