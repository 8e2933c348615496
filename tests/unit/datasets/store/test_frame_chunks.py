"""Direct frame reads (`datasets.store.frame_chunks`) give exactly zarr's arrays for the store's layout, leave
every other layout to zarr, and fail (so that zarr reads and names the damage) on damaged shards."""

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

from datasets.store.frame_chunks import frame_layout, read_frame
from datasets.store.reader import StoreReader
from datasets.store.schema import FRAME_ARRAYS, StoreLayout


@pytest.fixture
def store(scene_store):
    return scene_store(("aaa", 1, 20, 3))  # 20 DSLR frames: a full shard of 16 and a partial one


def _array_dir(store, camera, name, scene="aaa"):
    return StoreLayout(store).scene_dir(scene) / camera / name


def test_every_frame_of_every_array_reads_as_zarr_reads_it(store):
    reader = StoreReader(store)
    for camera, frames in (("dslr", 20), ("iphone", 3)):
        for name in FRAME_ARRAYS:
            array = reader.array("aaa", camera, name)
            layout = frame_layout(_array_dir(store, camera, name))
            assert layout is not None, (camera, name)
            for frame in range(frames):
                direct, through_zarr = read_frame(layout, frame), np.asarray(array[frame])
                assert direct.dtype == through_zarr.dtype and direct.flags.writeable
                np.testing.assert_array_equal(direct, through_zarr)


def test_the_reader_reads_pixels_without_zarr(store, monkeypatch):
    reader = StoreReader(store)
    expected = [reader.read_pixels("aaa", index) for index in range(23)]
    reads = []
    original = zarr.Array.__getitem__
    monkeypatch.setattr(zarr.Array, "__getitem__", lambda self, key: reads.append(key) or original(self, key))
    fresh = StoreReader(store)
    for index in range(23):
        pixels = fresh.read_pixels("aaa", index)
        for name in ("image", "depth_mm", "panoptic"):
            np.testing.assert_array_equal(pixels[name], expected[index][name])
    assert reads == []  # every pixel array came from its shard file


@pytest.mark.parametrize(
    "settings",
    [
        {"chunks": (2, 4, 4)},  # not sharded
        {"chunks": (1, 4, 4), "shards": (4, 4, 4), "compressors": [BloscCodec()]},
        {"chunks": (1, 4, 4), "shards": (4, 4, 4), "compressors": [ZstdCodec()], "fill_value": 7},
        {"chunks": (1, 2, 4), "shards": (4, 4, 4), "compressors": [ZstdCodec()]},  # frames split in chunks
    ],
)
def test_other_layouts_are_left_to_zarr(tmp_path, settings):
    zarr.create_array(tmp_path / "a.zarr", shape=(8, 4, 4), dtype="uint16", **settings)
    assert frame_layout(tmp_path / "a.zarr") is None


def test_a_missing_or_broken_zarr_json_is_left_to_zarr(tmp_path):
    assert frame_layout(tmp_path / "absent") is None
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "zarr.json").write_text("{ not json")
    assert frame_layout(tmp_path / "broken") is None


def _store_layout_array(path, frames=8):
    return zarr.create_array(
        path,
        shape=(frames, 4, 4),
        dtype="uint32",
        chunks=(1, 4, 4),
        shards=(4, 4, 4),
        compressors=[ZstdCodec(level=1, checksum=True)],
    )


def test_unwritten_frames_read_as_the_fill_value_and_missing_shards_raise(tmp_path):
    array = _store_layout_array(tmp_path / "a.zarr")
    array[0] = np.arange(16, dtype=np.uint32).reshape(4, 4)
    layout = frame_layout(tmp_path / "a.zarr")
    assert layout is not None
    np.testing.assert_array_equal(read_frame(layout, 0), array[0])
    np.testing.assert_array_equal(read_frame(layout, 2), np.zeros((4, 4), np.uint32))  # in a written shard
    with pytest.raises(FileNotFoundError):  # the second shard was never written: zarr gives the fill value
        read_frame(layout, 5)


def test_damaged_chunks_and_indexes_raise(store):
    layout = frame_layout(_array_dir(store, "dslr", "depth_mm"))
    shard = layout.shard_path(0)
    original = shard.read_bytes()
    data = bytearray(original)
    data[len(data) // 3] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises((RuntimeError, ValueError)):
        for frame in range(16):
            read_frame(layout, frame)
    data = bytearray(original)
    data[-10] ^= 0xFF  # inside the index
    shard.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="index checksum"):
        read_frame(layout, 0)
    shard.write_bytes(original[-100:])  # shorter than its index
    with pytest.raises(ValueError, match="shorter than its index"):
        read_frame(layout, 0)
