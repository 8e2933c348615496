import json

import pytest

from datasets.store import writer
from datasets.store.reader import StoreReader
from datasets.store.schema import SchemaVersionError

HASHES = {"source_hash": "s", "config_hash": "c", "code_version": "v"}


def test_missing_store_names_the_path_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="panst3r preprocess"):
        StoreReader(tmp_path / "nowhere")


def test_other_schema_version_is_refused_by_name(tmp_path):
    store = tmp_path / "store"
    writer.open_or_create_store(store)
    meta_path = store / "scenes.zarr" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"]["schema_version"] = 2
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(SchemaVersionError, match="schema_version 2, this code reads 1; re-run preprocess"):
        StoreReader(store)
    with pytest.raises(ValueError, match="schema_version 2"):
        writer.open_or_create_store(store)


def test_scene_of_other_schema_version_is_refused(tmp_path, make_scene):
    store = tmp_path / "store"
    writer.open_or_create_store(store)
    writer.write_scene(store, make_scene("s1"), **HASHES)
    meta_path = store / "scenes.zarr" / "scenes" / "s1" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"]["schema_version"] = 0
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(SchemaVersionError):
        StoreReader(store).scene_attrs("s1")


def test_unknown_scene_and_frame_out_of_range(tmp_path, make_scene):
    store = tmp_path / "store"
    writer.open_or_create_store(store)
    writer.write_scene(store, make_scene("s1"), **HASHES)
    reader = StoreReader(store)
    with pytest.raises(ValueError, match="no committed scene 'nope'"):
        reader.scene_attrs("nope")
    with pytest.raises(IndexError, match="5 frames"):
        reader.read_frame("s1", 5)


def test_frame_names_follow_selection_order(tmp_path, make_scene):
    store = tmp_path / "store"
    writer.open_or_create_store(store)
    writer.write_scene(store, make_scene("s1", dslr=2, iphone=1), **HASHES)
    reader = StoreReader(store)
    assert reader.frame_names("s1") == ["DSC00000", "DSC00001", "frame_00000"]
    assert reader.camera_shapes("s1") == {"dslr": (2, 12, 16), "iphone": (1, 9, 12)}


def test_pixels_and_per_camera_matrices_agree_with_whole_frames(tmp_path, make_scene):
    store = tmp_path / "store"
    writer.open_or_create_store(store)
    writer.write_scene(store, make_scene("s1", dslr=2, iphone=1), **HASHES)
    reader = StoreReader(store)
    matrices = reader.camera_matrices("s1")
    names = reader.camera_frame_names("s1")
    assert set(matrices) == set(names) == {"dslr", "iphone"}
    assert matrices["dslr"]["intrinsics"].shape == (2, 3, 3) and matrices["iphone"]["cam_to_world"].shape == (1, 4, 4)  # fmt: skip
    for frame_index in range(reader.num_frames("s1")):
        frame = reader.read_frame("s1", frame_index)
        camera, index = reader.frame_location("s1", frame_index)
        pixels = reader.read_pixels("s1", frame_index)
        assert set(pixels) == {"image", "depth_mm", "panoptic"} and camera == frame["camera"]
        for name, array in pixels.items():
            assert (array == frame[name]).all()
        assert (matrices[camera]["intrinsics"][index] == frame["intrinsics"]).all()
        assert names[camera][index] == frame["name"]
    with pytest.raises(IndexError, match="3 frames"):
        reader.frame_location("s1", 3)
