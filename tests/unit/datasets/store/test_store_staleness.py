"""Why a committed scene is stale, and which scenes a run committed (whatever failed after)."""

from datasets.store import writer
from datasets.store.failures import utc_now
from datasets.store.reader import read_scene_attrs
from datasets.store.schema import StoreLayout
from datasets.store.staleness import UNREADABLE, CurrentVersion, committed_by_this_run

ATTRS = {"source_hash": "s", "config_hash": "c", "code_version": "v"}


def test_each_difference_is_named():
    assert CurrentVersion("c", "v", {"a": "s"}).stale_reasons("a", ATTRS) == []
    reasons = CurrentVersion("c2", "v2", {"a": "s2"}).stale_reasons("a", ATTRS)
    assert reasons == ["inputs changed", "settings differ", "preprocessing code changed (v -> v2)"]
    assert CurrentVersion("c", "v", {"a": UNREADABLE}).stale_reasons("a", ATTRS) == ["inputs unreadable"]


def test_settings_are_compared_only_when_known():
    assert not CurrentVersion(None, "v").is_stale("a", ATTRS)
    per_scene = CurrentVersion(None, "v", config_hashes={"a": "c2"})
    assert per_scene.stale_reasons("a", ATTRS) == ["settings differ"] and not per_scene.is_stale("b", ATTRS)


def test_committed_by_this_run(tmp_path, make_scene):
    store = tmp_path / "store"
    writer.open_or_create_store(store)
    layout = StoreLayout(store)
    current = CurrentVersion("c", "v", {"aaa": "s"})
    started = utc_now()
    assert not committed_by_this_run(layout, "aaa", current, started)  # nothing committed yet
    writer.write_scene(store, make_scene("aaa"), **ATTRS)
    assert committed_by_this_run(layout, "aaa", current, started)
    assert not committed_by_this_run(layout, "aaa", current, utc_now())  # committed before that run
    assert not committed_by_this_run(layout, "aaa", CurrentVersion("c", "v", {"aaa": "other"}), started)
    assert read_scene_attrs(layout, "aaa")["made_with"] == {}
