import json

import numpy as np
import pytest
import zarr

from datasets.store import writer
from datasets.store.reader import StoreReader
from datasets.store.schema import SCHEMA_VERSION, StoreLayout

HASHES = {"source_hash": "s1", "config_hash": "c1", "code_version": "v1"}


def test_create_store_sets_root_attrs_and_is_idempotent(tmp_path):
    store = tmp_path / "store"
    uuid_a = writer.open_or_create_store(store)
    uuid_b = writer.open_or_create_store(store)
    assert uuid_a == uuid_b and len(uuid_a) == 32
    root = json.loads((store / "scenes.zarr" / "zarr.json").read_text())
    assert root["attributes"]["schema_version"] == SCHEMA_VERSION
    assert (store / "scenes.zarr" / "scenes" / "zarr.json").is_file()


def test_create_store_refuses_a_foreign_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="notes.txt"):
        writer.open_or_create_store(tmp_path)


def test_write_scene_round_trips_every_array(tmp_path, make_scene):
    store = tmp_path / "store"
    writer.open_or_create_store(store)
    scene = make_scene("0a1b2c3d4e", seed=1)
    summary = writer.write_scene(store, scene, split="train", **HASHES)
    assert summary["frames"] == 5
    reader = StoreReader(store)
    assert reader.scene_ids() == ["0a1b2c3d4e"]
    arrays = reader.read_scene_arrays("0a1b2c3d4e")
    for camera, block in scene.blocks.items():
        for name in ("images", "depth_mm", "panoptic", "intrinsics", "cam_to_world"):
            np.testing.assert_array_equal(arrays[camera][name], getattr(block, name))
            assert arrays[camera][name].dtype == getattr(block, name).dtype
        assert arrays[camera]["names"] == block.names
    np.testing.assert_array_equal(reader.pairs("0a1b2c3d4e"), scene.pairs)
    frame = reader.read_frame("0a1b2c3d4e", 4)  # selection index 4 = second iPhone frame
    assert frame["name"] == "frame_00001" and frame["camera"] == "iphone"
    np.testing.assert_array_equal(frame["image"], scene.blocks["iphone"].images[1])
    attrs = reader.scene_attrs("0a1b2c3d4e")
    assert attrs["source_hash"] == "s1" and attrs["split"] == "train" and attrs["num_frames"] == 5
    assert attrs["frame_order"][3] == ["iphone", 0]
    assert attrs["segments"] == scene.segments


def test_arrays_are_chunked_per_frame_and_compressed(tmp_path, make_scene):
    store = tmp_path / "store"
    writer.open_or_create_store(store)
    writer.write_scene(store, make_scene("s1"), **HASHES)
    group = zarr.open_group(str(store / "scenes.zarr" / "scenes" / "s1" / "dslr"), mode="r")
    images = group["images"]
    assert images.chunks == (1, 12, 16, 3)
    assert images.compressors, "arrays must be compressed"


def test_recommit_replaces_the_old_version_and_leaves_no_staging(tmp_path, make_scene):
    store = tmp_path / "store"
    writer.open_or_create_store(store)
    writer.write_scene(store, make_scene("s1", seed=1), **HASHES)
    newer = make_scene("s1", seed=2, dslr=4, iphone=0)
    writer.write_scene(store, newer, **{**HASHES, "source_hash": "s2"})
    reader = StoreReader(store)
    assert reader.scene_attrs("s1")["source_hash"] == "s2"
    arrays = reader.read_scene_arrays("s1")
    assert set(arrays) == {"dslr"}
    np.testing.assert_array_equal(arrays["dslr"]["images"], newer.blocks["dslr"].images)
    layout = StoreLayout(store)
    assert not any(layout.staging_dir.iterdir())
    assert not layout.trash_dir.exists() or not any(layout.trash_dir.iterdir())


def test_failed_write_leaves_no_scene_and_no_staging(tmp_path, make_scene):
    store = tmp_path / "store"
    writer.open_or_create_store(store)
    scene = make_scene("bad")
    scene.blocks["dslr"].depth_mm = scene.blocks["dslr"].depth_mm.astype(np.float32)
    with pytest.raises(ValueError, match="depth_mm"):
        writer.write_scene(store, scene, **HASHES)
    layout = StoreLayout(store)
    assert layout.committed_scene_ids() == []
    assert not layout.staging_dir.exists() or not any(layout.staging_dir.iterdir())


def test_empty_scene_is_refused(tmp_path, make_scene):
    store = tmp_path / "store"
    writer.open_or_create_store(store)
    scene = make_scene("empty", dslr=0, iphone=0)
    with pytest.raises(ValueError, match="no frames"):
        writer.write_scene(store, scene, **HASHES)


def test_half_written_staging_is_invisible_and_swept(tmp_path, make_scene):
    store = tmp_path / "store"
    writer.open_or_create_store(store)
    layout = StoreLayout(store)
    # What a worker killed mid-write leaves: a partial group under _staging.
    partial = layout.staging_dir / "s9.deadbeef"
    group = zarr.open_group(str(partial), mode="w")
    group.create_array("pairs", shape=(2, 3), dtype="f8")
    assert StoreReader(store).scene_ids() == []
    assert writer.sweep_staging(store) == ["s9.deadbeef"]
    assert not partial.exists()


def test_set_categories_and_cls_sep(tmp_path):
    store = tmp_path / "store"
    writer.open_or_create_store(store)
    assert StoreReader(store).cls_sep() == 256  # default until the flow records it
    writer.set_categories(store, [{"id": 0, "name": "wall", "isthing": 0}], cls_sep=1000)
    reader = StoreReader(store)
    assert reader.categories() == [{"id": 0, "name": "wall", "isthing": 0}]
    assert reader.cls_sep() == 1000


def test_a_locked_store_directory_is_not_foreign(tmp_path):
    from datasets.store.lock import store_lock

    with store_lock(tmp_path / "store"):
        writer.open_or_create_store(tmp_path / "store")


def test_staged_frames_go_in_whole_shards_and_stay_invisible(tmp_path, make_scene):
    """Chunk writers of one scene must never share a shard file: a start off a shard boundary, or an end
    that splits a shard, is a bug of the caller."""
    from datasets.store.schema import SHARD_FRAMES
    from datasets.store.writer import CameraLayout, stage_scene, supports_staged_scenes, write_staged_frames

    store = tmp_path / "store"
    writer.open_or_create_store(store)
    block = make_scene("s", dslr=SHARD_FRAMES + 2, iphone=0).blocks["dslr"]
    staging = stage_scene(store, "s", [CameraLayout("dslr", tuple(block.names), 12, 16)])

    def part(start: int, stop: int):
        return type(block)(
            "dslr", block.names[start:stop],
            *(getattr(block, n)[start:stop] for n in ("images", "depth_mm", "panoptic", "intrinsics", "cam_to_world")),
        )  # fmt: skip

    with pytest.raises(AssertionError, match="shard boundary"):
        write_staged_frames(store, staging, part(1, SHARD_FRAMES), 1)
    with pytest.raises(AssertionError, match="splits a shard"):
        write_staged_frames(store, staging, part(0, 4), 0)
    write_staged_frames(store, staging, part(SHARD_FRAMES, SHARD_FRAMES + 2), SHARD_FRAMES)
    assert writer.backend_for(store).committed_scene_ids() == [], "staged frames are invisible"
    assert supports_staged_scenes(store)
