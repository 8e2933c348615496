"""One scene of a batch run with the real tiny model on the CPU: outputs and manifest committed together,
the model loaded once for many scenes, a broken scene failing without leaving a folder."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from datasets.batch_prediction.manifest import MANIFEST_NAME, plan_scenes
from datasets.batch_prediction.output_folder import STAGING_DIR, BatchOutput
from datasets.batch_prediction.scene_job import BatchJob, commit_prediction, predict_scene, predict_views
from datasets.batch_prediction.scenes import folder_scenes, read_views, store_scenes
from datasets.batch_prediction.settings import PredictionSettings, prediction_identity
from datasets.store.hashing import DigestCache

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]

SETTINGS = PredictionSettings(num_keyframes=2, image_size=64, max_points=1000)


@pytest.fixture(scope="module")
def store_and_model(tmp_path_factory):
    """A store of two toy scenes of 3 views and a tiny_v1 checkpoint with hashed text embeddings."""
    from toy_store import write_toy_store_and_model

    return write_toy_store_and_model(tmp_path_factory.mktemp("batch_job"))


def _job(out, model):
    return BatchJob(
        str(out), str(model), SETTINGS, prediction_identity(model, SETTINGS, DigestCache()), "cpu"
    )


def test_store_scenes_are_predicted_into_complete_folders_by_one_loaded_model(store_and_model, tmp_path):
    store, model = store_and_model
    job = _job(tmp_path / "out", model)
    plans = plan_scenes(BatchOutput(job.out), store_scenes(store), job.identity)
    results = [predict_scene(job, plan) for plan in plans]

    assert [r["scene_id"] for r in results] == ["toy000_00", "toy000_01"]
    assert results[0]["predictor"] == results[1]["predictor"]  # loaded once for both scenes
    for plan in plans:
        folder = BatchOutput(job.out).scene_dir(plan.scene.scene_id)
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
        assert manifest["prediction_key"] == plan.prediction_key and manifest["num_views"] == 3
        assert (folder / "segments.json").is_file() and len(list((folder / "panoptic").iterdir())) == 3
    assert not any(p.run for p in plan_scenes(BatchOutput(job.out), store_scenes(store), job.identity))


def test_a_prediction_written_later_elsewhere_gives_the_same_folder(store_and_model, tmp_path):
    """The flow's two tasks: the prediction may travel to another worker (pickled) before it is written."""
    store, model = store_and_model
    whole, split = _job(tmp_path / "whole", model), _job(tmp_path / "split", model)
    plan = plan_scenes(BatchOutput(whole.out), store_scenes(store), whole.identity)[0]
    predict_scene(whole, plan)
    prediction = pickle.loads(pickle.dumps(predict_views(split, plan)))
    assert not BatchOutput(split.out).scene_dir(plan.scene.scene_id).exists(), "nothing written yet"
    result = commit_prediction(split, plan, prediction)
    assert result["seconds"] >= result["predict_seconds"] == prediction.seconds > 0
    folders = [BatchOutput(job.out).scene_dir(plan.scene.scene_id) for job in (whole, split)]
    files = [sorted(p.relative_to(f) for p in f.rglob("*") if p.is_file()) for f in folders]
    assert files[0] == files[1]
    for name in files[0]:
        if name.name == MANIFEST_NAME:
            continue  # it differs in its times only
        if name.name == "segments.json":  # so do the segments' records of the prediction's timings
            a, b = (json.loads((f / name).read_text()) for f in folders)
            assert a.pop("timings_s").keys() == b.pop("timings_s").keys() and a == b
            continue
        assert (folders[0] / name).read_bytes() == (folders[1] / name).read_bytes(), name


def test_store_views_come_in_frame_order_with_their_names(store_and_model):
    store, _ = store_and_model
    images, names = read_views(store_scenes(store)[0])
    assert names == ["frame_000000", "frame_000001", "frame_000002"]
    assert images[0].shape == (64, 96, 3) and images[0].dtype.name == "uint8"


def test_a_broken_scene_raises_and_leaves_no_folder(store_and_model, tmp_path):
    _, model = store_and_model
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"not a png")
    job = _job(tmp_path / "out", model)
    [plan] = plan_scenes(BatchOutput(job.out), folder_scenes([broken]), job.identity)
    with pytest.raises(ValueError, match="cannot read image"):
        predict_scene(job, plan)
    assert not (tmp_path / "out" / "broken").exists()
    assert not any((tmp_path / "out" / STAGING_DIR).glob("*"))


def test_a_checkpoint_rewritten_in_place_is_loaded_again(store_and_model, tmp_path):
    """A worker of a long-lived cluster keeps its model between runs; new content under the same path must
    not be served by the old model while the manifests record the new hash."""
    from panst3r_core.checkpoint.ours import save_checkpoint
    from panst3r_core.model.variants import build_model

    store, model = store_and_model
    scene = store_scenes(store)[:1]
    served = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        save_checkpoint(build_model("tiny_v1"), tmp_path / "model", metadata={"text_embeddings": "hashed"})
        job = _job(tmp_path / f"out{seed}", tmp_path / "model")
        [plan] = plan_scenes(BatchOutput(job.out), scene, job.identity)
        served.append((job.identity.checkpoint_hash, predict_scene(job, plan)["predictor"]))
    assert served[0][0] != served[1][0] and served[0][1] != served[1][1]
