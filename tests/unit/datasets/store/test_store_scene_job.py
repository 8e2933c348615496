import pytest

from datasets.preprocess.errors import BadSceneInput, TransientSceneError
from datasets.store import writer
from datasets.store.failures import write_failure
from datasets.store.scene_job import failure_reason, is_bad_input, plan_scene
from datasets.store.schema import StoreLayout


def test_bad_input_is_not_retried_and_keeps_its_message():
    assert (
        is_bad_input(BadSceneInput("x"))
        and is_bad_input(FileNotFoundError("x"))
        and is_bad_input(KeyError("x"))
    )
    assert not is_bad_input(OSError("EGL")) and not is_bad_input(TransientSceneError("lost"))
    assert (
        failure_reason(BadSceneInput("scans/segments.json: segIndices\nmore"))
        == "scans/segments.json: segIndices"
    )
    assert failure_reason(KeyError("frame_000120.jpg")) == "frame_000120.jpg"
    assert failure_reason(OSError("EGL context lost")) == "OSError: EGL context lost"
    assert failure_reason(RuntimeError()) == "RuntimeError"


def test_plan_marks_unreadable_scenes_for_a_task(tmp_path):
    (tmp_path / "root" / "data" / "aaaaaaaaaa").mkdir(parents=True)
    writer.open_or_create_store(tmp_path / "store")
    plan = plan_scene(tmp_path / "store", tmp_path / "root", "aaaaaaaaaa", None, "c", "v")
    assert plan.run and plan.source_hash is None and "unreadable input" in plan.why


@pytest.fixture
def committed(tmp_path, make_scene, monkeypatch):
    """A store with one committed scene whose source hash is that of a fake reader's files."""
    from datasets.store import scene_job
    from datasets.store.hashing import source_hash

    root = tmp_path / "root"
    (root / "data" / "s1").mkdir(parents=True)
    mesh = root / "data" / "s1" / "mesh.ply"
    mesh.write_text("ply")

    class FakeRecord:
        source_files = (mesh,)

    monkeypatch.setattr(scene_job, "read_scene", lambda root, scene_id, pairs=None: FakeRecord())
    store = tmp_path / "store"
    writer.open_or_create_store(store)
    writer.write_scene(
        store, make_scene("s1"), source_hash=source_hash([mesh], root), config_hash="c", code_version="v"
    )
    return store, root, mesh


def test_plan_skips_only_identical_scenes(committed):
    store, root, mesh = committed
    assert not plan_scene(store, root, "s1", None, "c", "v").run
    assert plan_scene(store, root, "s1", None, "c2", "v").why == "changed: config"
    assert plan_scene(store, root, "s1", None, "c", "v2").why == "changed: code"
    write_failure(StoreLayout(store), "s1", "OSError", "disk full")
    assert plan_scene(store, root, "s1", None, "c", "v").why == "changed: last attempt failed"
    (StoreLayout(store).failure_path("s1")).unlink()
    mesh.write_text("ply2")
    assert plan_scene(store, root, "s1", None, "c", "v").why == "changed: inputs"
