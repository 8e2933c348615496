import dataclasses
import json

import pandas as pd
import pytest

from datasets.preprocess.unknown_labels import UnknownLabelReport
from datasets.store import writer
from datasets.store.failures import write_failure
from datasets.store.schema import StoreLayout
from datasets.store.tables import CurrentVersion, TableBuilder, read_table

HASHES = {"source_hash": "s", "config_hash": "c", "code_version": "v"}


@pytest.fixture
def store(tmp_path, make_scene):
    store = tmp_path / "store"
    writer.open_or_create_store(store)
    writer.write_scene(store, make_scene("aaa", seed=1, dslr=3, iphone=2), split="train", **HASHES)
    writer.write_scene(store, make_scene("bbb", seed=2, dslr=2, iphone=0), split="val", **HASHES)
    write_failure(StoreLayout(store), "ccc", "ValueError", "segments.json: segIndices are not 0..N-1")
    return store


def test_tables_list_committed_scenes_and_failures(store):
    tables = TableBuilder(store).write()
    scenes = read_table(store, "scenes")
    assert list(scenes["scene_id"]) == ["aaa", "bbb", "ccc"]
    assert list(scenes["status"]) == ["done", "done", "failed"]
    assert scenes.loc[2, "error"] == "segments.json: segIndices are not 0..N-1"
    assert list(scenes["frames"]) == [5, 2, 0]
    # No `total` timing was recorded here, so seconds is the sum of the stages.
    assert scenes.loc[0, "seconds"] == pytest.approx(1.75 + scenes.loc[0, "seconds_write"])
    assert scenes.loc[0, "seconds_render"] == pytest.approx(1.5)
    assert scenes["scene_id"].dtype == tables["scenes"]["scene_id"].dtype

    frames = read_table(store, "frames")
    assert len(frames) == 7
    aaa = frames[frames.scene_id == "aaa"]
    assert list(aaa["camera"]) == ["dslr"] * 3 + ["iphone"] * 2
    assert list(aaa["index_in_camera"]) == [0, 1, 2, 0, 1]
    assert list(aaa["height"]) == [12, 12, 12, 9, 9] and list(aaa["width"]) == [16, 16, 16, 12, 12]
    assert set(frames["split"]) == {"train", "val"}

    pairs = read_table(store, "pairs")
    assert len(pairs) == 4 + 1
    assert pairs["frame_a"].dtype == "int32" and pairs["overlap"].dtype == "float32"
    assert list(pairs[pairs.scene_id == "bbb"]["frame_b"]) == [1]


def test_a_later_success_clears_the_failed_status(store, make_scene):
    layout = StoreLayout(store)
    writer.write_scene(store, make_scene("ccc", seed=3), **HASHES)
    scenes = TableBuilder(store).build()["scenes"]
    # A failure record older than the commit no longer counts.
    assert scenes.set_index("scene_id").loc["ccc", "status"] == "done"
    write_failure(layout, "ccc", "OSError", "disk full")
    scenes = TableBuilder(store).build()["scenes"]
    assert scenes.set_index("scene_id").loc["ccc", "status"] == "failed"


def test_stale_when_config_code_or_source_changed(store):
    builder = TableBuilder(store)
    assert set(builder.build(CurrentVersion("c", "v"))["scenes"]["status"]) == {"done", "failed"}
    by_id = builder.build(CurrentVersion("c2", "v"))["scenes"].set_index("scene_id")["status"]
    assert by_id["aaa"] == "stale" and by_id["bbb"] == "stale" and by_id["ccc"] == "failed"
    by_id = builder.build(CurrentVersion("c", "v", {"aaa": "changed"}))["scenes"].set_index("scene_id")[
        "status"
    ]
    assert by_id["aaa"] == "stale" and by_id["bbb"] == "done"


def test_unknown_labels_columns(store, make_scene):
    report = UnknownLabelReport({"vase": 30, "garden, gnome": 12}, vertices=40, pixels=3456)
    writer.write_scene(store, dataclasses.replace(make_scene("ddd", seed=4), unknown_labels=report), **HASHES)
    # A scene committed before the report existed has no such attr: its counts are not known.
    writer.write_scene(store, make_scene("eee", seed=6), **HASHES)
    metadata = StoreLayout(store).scene_dir("eee") / "zarr.json"
    content = json.loads(metadata.read_text())
    del content["attributes"]["unknown_labels"]
    metadata.write_text(json.dumps(content))

    TableBuilder(store).write()
    scenes = read_table(store, "scenes").set_index("scene_id")
    assert scenes.loc["ddd", "unknown_labels"] == "'garden, gnome', 'vase'"
    assert scenes.loc["ddd", "unknown_label_vertices"] == 40
    assert scenes.loc["ddd", "unknown_label_pixels"] == 3456
    assert scenes.loc["aaa", "unknown_labels"] == ""  # recorded: none
    assert scenes.loc["aaa", "unknown_label_vertices"] == 0 and scenes.loc["aaa", "unknown_label_pixels"] == 0
    for not_recorded in ("eee", "ccc"):  # committed by older code; failed and never committed
        assert scenes.loc[not_recorded, "unknown_labels"] == ""
        assert scenes.loc[not_recorded, "unknown_label_vertices"] is pd.NA
    assert str(scenes["unknown_label_pixels"].dtype) == "Int64"


def test_rebuild_picks_up_a_recommitted_scene(store, make_scene):
    builder = TableBuilder(store)
    assert len(builder.build()["frames"]) == 7
    writer.write_scene(store, make_scene("bbb", seed=5, dslr=4, iphone=0), **HASHES)
    assert len(builder.build()["frames"]) == 9


def test_scenes_read_ahead_are_not_read_again_by_the_build(store, make_scene, monkeypatch):
    from datasets.store import tables as tables_module

    reads = []
    real = tables_module._frame_columns
    monkeypatch.setattr(
        tables_module,
        "_frame_columns",
        lambda reader, scene_id, attrs: reads.append(scene_id) or real(reader, scene_id, attrs),
    )
    builder = TableBuilder(store)
    assert builder.read_new_scenes() == 2
    assert builder.read_new_scenes() == 0
    writer.write_scene(store, make_scene("ddd", seed=4, dslr=2, iphone=0), split="train", **HASHES)
    tables = builder.build()
    assert reads == ["aaa", "bbb", "ddd"]
    # The same tables as a cold build's, dtypes included.
    cold = TableBuilder(store).build()
    for name in ("scenes", "frames", "pairs"):
        pd.testing.assert_frame_equal(tables[name], cold[name])
    assert list(tables["frames"]["scene_id"].unique()) == ["aaa", "bbb", "ddd"]


def test_read_new_scenes_on_a_missing_store_reads_nothing(tmp_path):
    assert TableBuilder(tmp_path / "nowhere").read_new_scenes() == 0


def test_empty_store_gives_typed_empty_tables(tmp_path):
    store = tmp_path / "store"
    writer.open_or_create_store(store)
    tables = TableBuilder(store).write()
    for name in ("scenes", "frames", "pairs"):
        assert len(read_table(store, name)) == 0
    assert tables["pairs"]["frame_a"].dtype == "int32"
    assert isinstance(tables["scenes"], pd.DataFrame)


def test_read_table_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="panst3r preprocess"):
        read_table(tmp_path, "scenes")
    with pytest.raises(ValueError, match="unknown table"):
        read_table(tmp_path, "nope")
