"""The skip decision of batch prediction: a scene is skipped exactly when its manifest records this run's
checkpoint content, settings and input; otherwise the plan says what changed."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from datasets.batch_prediction.manifest import MANIFEST_NAME, SceneManifest, plan_scenes, read_manifest
from datasets.batch_prediction.output_folder import BatchOutput
from datasets.batch_prediction.scenes import folder_scenes
from datasets.batch_prediction.settings import PredictionIdentity, PredictionSettings

IDENTITY = PredictionIdentity("ckpt-a", PredictionSettings(num_keyframes=2).recorded())


def _image_folder(parent, name, views=2):
    folder = parent / name
    folder.mkdir()
    for v in range(views):
        Image.fromarray(np.full((16, 16, 3), 40 * v, dtype=np.uint8)).save(folder / f"v{v}.png")
    return folder


def _commit(output, plan, identity=IDENTITY):
    """Commit a scene folder as the job would, with the manifest of `identity`."""
    manifest = SceneManifest(
        scene_id=plan.scene.scene_id,
        source_kind=plan.scene.kind,
        source=plan.scene.source,
        prediction_key=identity.key(plan.input_digest),
        checkpoint="ckpt",
        checkpoint_hash=identity.checkpoint_hash,
        settings=identity.settings,
        input_digest=plan.input_digest,
        num_views=2,
        num_segments=1,
        seconds=0.1,
        device="cpu",
        predicted_at="now",
    )
    output.commit(plan.scene.scene_id, manifest.write)


@pytest.fixture
def predicted(tmp_path):
    """(output, scenes): two image folders, both predicted with IDENTITY."""
    scenes = folder_scenes([_image_folder(tmp_path, "alpha"), _image_folder(tmp_path, "beta")])
    output = BatchOutput(tmp_path / "out")
    for plan in plan_scenes(output, scenes, IDENTITY):
        _commit(output, plan)
    return output, scenes


def _whys(plans):
    return {p.scene.scene_id: (p.run, p.why) for p in plans}


def test_new_scenes_run_and_predicted_ones_are_skipped(tmp_path, predicted):
    output, scenes = predicted
    fresh = folder_scenes([_image_folder(tmp_path, "gamma")])
    plans = _whys(plan_scenes(output, scenes + fresh, IDENTITY))
    assert plans == {
        "alpha": (False, "up to date"),
        "beta": (False, "up to date"),
        "gamma": (True, "not predicted yet"),
    }


def test_changed_settings_or_checkpoint_predict_again_and_say_why(predicted):
    output, scenes = predicted
    other_settings = PredictionIdentity("ckpt-a", PredictionSettings(num_keyframes=3, amp="bf16").recorded())
    assert {why for _, why in _whys(plan_scenes(output, scenes, other_settings)).values()} == {
        "settings changed: amp, num_keyframes"
    }
    other_checkpoint = PredictionIdentity("ckpt-b", IDENTITY.settings)
    assert all(
        run and why == "checkpoint changed"
        for run, why in _whys(plan_scenes(output, scenes, other_checkpoint)).values()
    )


def test_settings_that_leave_results_alone_do_not_predict_again(predicted):
    output, scenes = predicted
    streamed = PredictionIdentity("ckpt-a", PredictionSettings(num_keyframes=2, chunk_views=8).recorded())
    assert not any(p.run for p in plan_scenes(output, scenes, streamed))


def test_a_changed_input_folder_is_stale(predicted):
    output, scenes = predicted
    image = os.path.join(scenes[0].source, "v0.png")
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8) + 7).save(image)
    os.utime(image, ns=(1, 1))  # a different modification time, whatever the clock's resolution
    assert _whys(plan_scenes(output, scenes, IDENTITY))["alpha"] == (True, "input changed")


def test_force_predicts_up_to_date_scenes_again(predicted):
    output, scenes = predicted
    assert all(p.run and "--force" in p.why for p in plan_scenes(output, scenes, IDENTITY, force=True))


def test_a_failed_scene_runs_again_with_its_last_reason(tmp_path):
    scenes = folder_scenes([_image_folder(tmp_path, "alpha")])
    output = BatchOutput(tmp_path / "out")
    output.write_failure("alpha", {"reason": "cannot read image v1.png"})
    assert _whys(plan_scenes(output, scenes, IDENTITY))["alpha"] == (
        True,
        "last attempt failed: cannot read image v1.png",
    )


def test_unreadable_or_other_schema_manifests_count_as_missing(predicted):
    output, scenes = predicted
    (output.scene_dir("alpha") / MANIFEST_NAME).write_text("{not json")
    manifest = output.scene_dir("beta") / MANIFEST_NAME
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "schema_version": 99}))
    assert (
        read_manifest(output.scene_dir("alpha")) is None and read_manifest(output.scene_dir("beta")) is None
    )
    assert all(
        run and why == "not predicted yet"
        for run, why in _whys(plan_scenes(output, scenes, IDENTITY)).values()
    )


def test_a_folder_without_images_is_planned_with_its_reason_not_raised(tmp_path):
    (tmp_path / "empty").mkdir()
    plans = plan_scenes(BatchOutput(tmp_path / "out"), folder_scenes([tmp_path / "empty"]), IDENTITY)
    assert (
        plans[0].run
        and plans[0].why.startswith("input unreadable: folder")
        and "no image files" in plans[0].why
    )


def test_scene_ids_that_would_collide_with_the_bookkeeping_folders_fail_alone(tmp_path):
    output = BatchOutput(tmp_path / "out")
    scenes = folder_scenes([_image_folder(tmp_path, "_failed"), _image_folder(tmp_path, "fine")])
    plans = _whys(plan_scenes(output, scenes, IDENTITY))
    assert plans["_failed"][0] and "reserved for the run's bookkeeping" in plans["_failed"][1]
    assert plans["fine"] == (True, "not predicted yet")
    with pytest.raises(ValueError, match="reserved"):
        output.commit("_failed", lambda folder: None)


def test_two_folders_of_one_name_are_refused(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(ValueError, match="both named 'scene'"):
        folder_scenes([_image_folder(tmp_path / "a", "scene"), _image_folder(tmp_path / "b", "scene")])
