"""The `predict-batch` flow end to end through the CLI: a real Prefect server, a real Dask LocalCluster and
the tiny model on the CPU. Two toy store scenes are predicted, skipped on a re-run and predicted again when a
setting changes; a broken image folder fails with its reason while the good one completes, and is the only
scene the next run predicts once fixed."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from _preprocess_support import REPO, cli_command, cli_env
from PIL import Image

pytestmark = pytest.mark.slow

SMALL = ["--image-size", "64", "--max-points", "1000", "--device", "cpu"]


@pytest.fixture(scope="module")
def store_and_model(tmp_path_factory):
    """A store of two toy scenes of 3 views and a tiny_v1 checkpoint with hashed text embeddings."""
    from toy_store import write_toy_store_and_model

    return write_toy_store_and_model(tmp_path_factory.mktemp("predict_batch_flow"))


def _predict_batch(prefect_server, summary_path, *args):
    env = cli_env(*prefect_server)
    env["OMP_NUM_THREADS"] = "1"
    command = cli_command("predict-batch", *args, *SMALL, "--summary-json", str(summary_path))
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    if not summary_path.is_file():
        raise AssertionError(f"no summary (rc {result.returncode}):\n{result.stderr[-4000:]}")
    return result, json.loads(summary_path.read_text())


def _manifest(out, scene_id):
    return json.loads((out / scene_id / "manifest.json").read_text())


def test_store_scenes_are_predicted_then_skipped_then_predicted_again_on_a_new_setting(
    store_and_model, prefect_server, tmp_path
):
    store, model = store_and_model
    out = tmp_path / "out"
    base = ["--weights", str(model), "--store", str(store), "--out", str(out), "--workers", "1"]

    first, summary = _predict_batch(prefect_server, tmp_path / "1.json", *base, "--num-keyframes", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    assert sorted(summary["done"]) == ["toy000_00", "toy000_01"] and not summary["failed"]
    assert len({result["predictor"] for result in summary["done"].values()}) == 1  # one model load per worker
    assert "done 2 / skipped 0 / failed 0" in first.stdout and "scenes/hour" in first.stdout
    keys = {scene: _manifest(out, scene)["prediction_key"] for scene in summary["done"]}

    again, summary = _predict_batch(prefect_server, tmp_path / "2.json", *base, "--num-keyframes", "2")
    assert again.returncode == 0 and summary["done"] == {}
    assert summary["skipped"] == ["toy000_00", "toy000_01"]
    assert {scene: _manifest(out, scene)["prediction_key"] for scene in keys} == keys

    changed, summary = _predict_batch(prefect_server, tmp_path / "3.json", *base, "--num-keyframes", "3")
    assert changed.returncode == 0 and sorted(summary["done"]) == ["toy000_00", "toy000_01"]
    assert all(_manifest(out, scene)["settings"]["num_keyframes"] == 3 for scene in keys)
    leftovers = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))  # .lock stays
    assert leftovers == ["_cache", "toy000_00", "toy000_01"]


def test_a_broken_scene_fails_with_its_reason_and_the_other_completes(
    store_and_model, prefect_server, tmp_path
):
    _, model = store_and_model
    good, broken = tmp_path / "good", tmp_path / "broken"
    for folder in (good, broken):
        folder.mkdir()
        for view in range(3):
            pixels = np.random.default_rng(view).integers(0, 255, (64, 96, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"view{view}.png")
    (broken / "view1.png").write_bytes(b"truncated")
    out = tmp_path / "out"
    args = ["--weights", str(model), "--folders", str(good), str(broken), "--out", str(out), "--workers", "2"]

    result, summary = _predict_batch(prefect_server, tmp_path / "s.json", *args)
    assert result.returncode == 1  # some scene failed
    assert list(summary["done"]) == ["good"] and (out / "good" / "manifest.json").is_file()
    assert list(summary["failed"]) == ["broken"] and "cannot read image" in summary["failed"]["broken"]
    assert "view1.png" in summary["failed"]["broken"] and "failed" in result.stdout
    assert not (out / "broken").exists() and not (out / "_staging").exists()  # nothing half-written
    record = json.loads((out / "_failed" / "broken.json").read_text())
    assert record["reason"] == summary["failed"]["broken"]

    # once the image is fixed, the next run predicts only the scene that failed and clears its record
    Image.fromarray(np.zeros((64, 96, 3), dtype=np.uint8)).save(broken / "view1.png")
    fixed, summary = _predict_batch(prefect_server, tmp_path / "s2.json", *args)
    assert fixed.returncode == 0 and list(summary["done"]) == ["broken"] and summary["skipped"] == ["good"]
    assert (out / "broken" / "manifest.json").is_file() and not (out / "_failed" / "broken.json").exists()
