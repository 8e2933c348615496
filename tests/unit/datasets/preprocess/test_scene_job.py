import pytest
from toy_store import toy_scene

from datasets.preprocess.scene_job import plan_scene
from datasets.store import writer
from datasets.store.failures import write_failure
from datasets.store.schema import StoreLayout


def test_plan_marks_unreadable_scenes_for_a_task(tmp_path):
    (tmp_path / "root" / "data" / "aaaaaaaaaa").mkdir(parents=True)
    writer.open_or_create_store(tmp_path / "store")
    plan = plan_scene(tmp_path / "store", tmp_path / "root", "aaaaaaaaaa", None, "c", "v")
    assert plan.run and plan.source_hash is None and "unreadable input" in plan.why


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """One real synthetic scene (small: 2 frames of 96x64), generated once for this module."""
    from datasets.synthetic.generate import generate_dataset

    root = tmp_path_factory.mktemp("synthetic")
    (scene_id,) = generate_dataset(root, 1, seed=4, frames=2, image_size=(96, 64))
    return root, scene_id


@pytest.fixture
def committed(generated, tmp_path):
    """A store holding the generated scene's id, committed with the hash of its real input files."""
    import shutil

    from datasets.scannetpp.reader import read_scene
    from datasets.store.hashing import source_hash

    root = tmp_path / "root"
    shutil.copytree(generated[0], root)
    scene_id = generated[1]
    record = read_scene(root, scene_id)
    store = tmp_path / "store"
    writer.open_or_create_store(store)
    writer.write_scene(
        store,
        toy_scene(scene_id, seed=0),
        source_hash=source_hash(record.source_files, root),
        config_hash="c",
        code_version="v",
    )
    return store, root, scene_id, record.mesh_path


def test_plan_skips_only_identical_scenes(committed):
    store, root, scene_id, mesh = committed
    assert not plan_scene(store, root, scene_id, None, "c", "v").run
    assert plan_scene(store, root, scene_id, None, "c2", "v").why == "changed: config"
    assert plan_scene(store, root, scene_id, None, "c", "v2").why == "changed: code"
    write_failure(StoreLayout(store), scene_id, "OSError", "disk full")
    assert plan_scene(store, root, scene_id, None, "c", "v").why == "changed: last attempt failed"
    StoreLayout(store).failure_path(scene_id).unlink()
    mesh.write_bytes(mesh.read_bytes() + b"\n")
    assert plan_scene(store, root, scene_id, None, "c", "v").why == "changed: inputs"
    assert plan_scene(store, root, "0000000000", None, "c", "v").why.startswith("unreadable input")


def test_store_plan_uses_the_digest_cache_and_knows_the_current_version(committed):
    from datasets.preprocess.result import PreprocessConfig
    from datasets.preprocess.scene_job import plan_scenes
    from datasets.store import hashing

    store, root, scene_id, _ = committed
    config = PreprocessConfig()
    first = plan_scenes(store, root, [scene_id, "0000000000"], None, config)
    assert [p.scene_id for p in first.to_run] == [scene_id, "0000000000"]  # config "c" is not this config's
    assert first.files_read > 0 and first.files_unchanged == 0
    again = plan_scenes(store, root, [scene_id], None, config)
    assert again.files_read == 0 and again.files_unchanged == first.files_read
    current = again.current_version()
    assert (
        current.config_hash == hashing.config_hash(config) and current.code_version == hashing.code_version()
    )
    assert current.source_hashes == {scene_id: again.scenes[0].source_hash}


def test_the_first_plan_is_decided_before_any_other_scene_is_read(committed, monkeypatch):
    """Its scene's tasks go out without waiting for the other scenes' hashing."""
    from datasets.preprocess import scene_job
    from datasets.preprocess.result import PreprocessConfig

    store, root, scene_id, _ = committed
    started, plan_one = [], scene_job.plan_scene

    def recorded(store_, root_, scene, *args):
        started.append(scene)
        return plan_one(store_, root_, scene, *args)

    monkeypatch.setattr(scene_job, "plan_scene", recorded)
    plans = scene_job.ScenePlanner(store, root, None, PreprocessConfig()).plans([scene_id, "0000000000"])
    assert next(plans).scene_id == scene_id and started == [scene_id]
    assert next(plans).scene_id == "0000000000" and started == [scene_id, "0000000000"]


def test_the_planner_hands_out_each_plan_before_the_rest_are_decided(committed, monkeypatch):
    """The flow submits a scene's tasks from the first plan on; planning the others goes on meanwhile and the
    digest cache is saved once, at the end."""
    import threading

    from datasets.preprocess import scene_job
    from datasets.preprocess.result import PreprocessConfig

    store, root, scene_id, _ = committed
    release = threading.Event()
    plan_one = scene_job.plan_scene

    def slow_for_the_second(store_, root_, scene, *args):
        if scene == "0000000000":
            assert release.wait(30), "the first plan was not handed out while this one was pending"
        return plan_one(store_, root_, scene, *args)

    monkeypatch.setattr(scene_job, "plan_scene", slow_for_the_second)
    planner = scene_job.ScenePlanner(store, root, None, PreprocessConfig())
    plans = planner.plans([scene_id, "0000000000"])
    first = next(plans)
    assert first.scene_id == scene_id and first.run
    assert first.record is not None and len(first.record.frames) > 0, "the inputs as read, for chunk staging"
    release.set()
    second = next(plans)
    assert second.scene_id == "0000000000" and second.why.startswith("unreadable input")
    assert second.record is None
    store_plan = planner.finish([first, second])
    assert store_plan.scenes == [first, second] and store_plan.files_read > 0
    assert scene_job.plan_scenes(store, root, [scene_id], None, PreprocessConfig()).files_read == 0, "cache saved"
