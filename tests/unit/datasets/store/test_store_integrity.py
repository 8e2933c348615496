"""A damaged chunk or metadata file is named (scene, camera, array, frame, file) with the fix, and
`verify_store` finds every damaged chunk without stopping at the first."""

import pytest

from datasets.store.integrity import CorruptSceneError, has_checksums
from datasets.store.reader import StoreReader
from datasets.store.schema import StoreLayout
from datasets.store.verify import verify_store


@pytest.fixture
def store(scene_store):
    return scene_store(("aaa", 1, 3, 2), ("bbb", 2, 2, 0))


def _damage_every_chunk(store, scene_id, camera, array):
    """Flip a byte in the middle of the array's only shard (3 frames or fewer: one shard)."""
    shard = next(p for p in (StoreLayout(store).scene_dir(scene_id) / camera / array / "c").rglob("*") if p.is_file())
    data = bytearray(shard.read_bytes())
    data[len(data) // 3] ^= 0xFF
    shard.write_bytes(bytes(data))
    return shard


def test_every_array_is_written_with_checksums(store):
    reader = StoreReader(store)
    assert has_checksums(reader.array("aaa", "dslr", "images"))
    assert has_checksums(reader.array("aaa", "_scene", "pairs"))


def test_a_damaged_chunk_names_scene_camera_array_frame_and_file(store):
    shard = _damage_every_chunk(store, "aaa", "iphone", "panoptic")
    reader = StoreReader(store)
    reader.read_frame("aaa", 0)  # a dslr frame: untouched
    with pytest.raises(CorruptSceneError) as caught:
        for index in range(reader.num_frames("aaa")):
            reader.read_frame("aaa", index)
    message = str(caught.value)
    assert "scene aaa, camera iphone, array panoptic, frame" in message and str(shard) in message
    assert message.endswith("`--redo aaa` to rewrite it") and caught.value.scene_id == "aaa"


def test_whole_array_reads_name_the_first_bad_frame(store):
    _damage_every_chunk(store, "bbb", "dslr", "depth_mm")
    with pytest.raises(CorruptSceneError, match=r"array depth_mm, frame \d \(DSC\d{5}\)"):
        StoreReader(store).read_scene_arrays("bbb")


def test_broken_metadata_names_its_file(store):
    metadata = StoreLayout(store).scene_dir("bbb") / "dslr" / "images" / "zarr.json"
    metadata.write_text("{ not json")
    with pytest.raises(CorruptSceneError, match=rf"{metadata} cannot be read .*--redo bbb"):
        StoreReader(store).read_frame("bbb", 0)
    scene_json = StoreLayout(store).scene_dir("aaa") / "zarr.json"
    scene_json.write_text("{")
    with pytest.raises(CorruptSceneError, match=rf"{scene_json} cannot be read"):
        StoreReader(store).scene_attrs("aaa")


def test_verify_finds_every_damaged_chunk_and_the_tables(store):
    from datasets.store.tables import TableBuilder

    assert verify_store(store).damage == []
    TableBuilder(store).write()
    _damage_every_chunk(store, "aaa", "dslr", "images")
    table = StoreLayout(store).table_path("frames")
    table.write_bytes(table.read_bytes()[:100])
    report = verify_store(store)
    assert report.scenes == 2 and report.damaged_scenes == ["aaa"] and report.unchecked == []
    scene_damage = [d.message for d in report.damage if d.scene_id]
    assert 1 <= len(scene_damage) <= 3 and all("camera dslr, array images" in m for m in scene_damage)
    assert any("frames.parquet cannot be read" in d.message for d in report.damage if not d.scene_id)
