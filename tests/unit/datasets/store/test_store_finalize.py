"""The end of a preprocessing run: root vocabulary and cls_sep from the committed scenes, fresh tables."""

from datasets.store import writer
from datasets.store.finalize import finalize_store
from datasets.store.reader import StoreReader
from datasets.store.tables import CurrentVersion

HASHES = {"source_hash": "s", "config_hash": "c", "code_version": "v"}


def test_root_attrs_and_tables_come_from_the_committed_scenes(tmp_path, make_scene):
    store = tmp_path / "store"
    writer.open_or_create_store(store)
    empty = finalize_store(store, cls_sep=512)  # nothing committed yet: no vocabulary, empty tables
    assert empty["scenes"].empty and StoreReader(store).categories() == []
    writer.write_scene(store, make_scene("s1"), **HASHES)
    writer.write_scene(store, make_scene("s2"), **HASHES)
    tables = finalize_store(store, cls_sep=512, current=CurrentVersion("c", "v2"))
    reader = StoreReader(store)
    assert reader.cls_sep() == 512 and reader.categories() == make_scene("s1").categories
    assert list(tables["scenes"]["scene_id"]) == ["s1", "s2"]
    assert set(tables["scenes"]["status"]) == {"stale"}  # compared with code version v2
    assert (store / "tables" / "frames.parquet").is_file()
