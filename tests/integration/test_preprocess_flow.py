"""The `preprocess` flow end to end: 2 synthetic scenes, 2 Dask workers, a real Prefect server."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from _preprocess_support import cli_command, cli_env, make_root, run_preprocess

from datasets.store.reader import StoreReader
from datasets.store.tables import read_table

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_root(tmp_path_factory.mktemp("synthetic"), num_scenes=2, seed=3)


def test_two_scenes_on_two_workers_then_incremental(dataset, prefect_server, tmp_path):
    root, pairs = dataset
    env = cli_env(*prefect_server)
    store = tmp_path / "store"

    result, summary = run_preprocess(env, root, pairs, store, tmp_path / "s1.json", "--workers", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(summary["done"]) == 2 and summary["failed"] == {} and summary["skipped"] == []

    reader = StoreReader(store)
    scene_ids = reader.scene_ids()
    assert scene_ids == summary["done"]
    scenes = read_table(store, "scenes")
    assert list(scenes["status"]) == ["done", "done"]
    frames = read_table(store, "frames")
    for scene_id in scene_ids:
        num = reader.num_frames(scene_id)
        assert num == 3 and (frames.scene_id == scene_id).sum() == num
        frame = reader.read_frame(scene_id, 0)
        assert frame["image"].dtype == np.uint8 and frame["image"].shape[2] == 3
        assert frame["depth_mm"].shape == frame["image"].shape[:2]
        assert (frame["depth_mm"] > 0).mean() > 0.5, "the synthetic room surrounds the camera"
        assert (frame["panoptic"] > 0).any()
        assert np.isfinite(frame["cam_to_world"]).all()
    assert len(reader.categories()) > 0
    root_attrs = json.loads((store / "scenes.zarr" / "zarr.json").read_text())["attributes"]
    assert root_attrs["cls_sep"] == 256 and root_attrs["schema_version"] == 1
    assert len(read_table(store, "pairs")) > 0

    # Same inputs, config and code: everything is skipped, nothing rewritten.
    committed = {s: reader.scene_attrs(s)["committed_at"] for s in scene_ids}
    result, summary = run_preprocess(env, root, pairs, store, tmp_path / "s2.json", "--workers", "2")
    assert result.returncode == 0
    assert summary["skipped"] == scene_ids and summary["done"] == []
    assert {s: StoreReader(store).scene_attrs(s)["committed_at"] for s in scene_ids} == committed

    # A changed input file redoes that scene only; a new config redoes all.
    changed = scene_ids[0]
    segments = root / "data" / changed / "scans" / "segments_anno.json"
    segments.write_text(segments.read_text() + "\n")
    _, summary = run_preprocess(env, root, pairs, store, tmp_path / "s3.json", "--workers", "2")
    assert summary["done"] == [changed] and summary["skipped"] == scene_ids[1:]

    # Deleting the store redoes everything.
    shutil.rmtree(store)
    _, summary = run_preprocess(env, root, pairs, store, tmp_path / "s4.json", "--workers", "1")
    assert summary["done"] == scene_ids


def test_status_and_export_legacy_commands(dataset, prefect_server, tmp_path):
    import subprocess

    from _preprocess_support import REPO

    root, pairs = dataset
    env = cli_env(*prefect_server)
    store = tmp_path / "store"
    run_preprocess(
        env, root, pairs, store, tmp_path / "s.json", "--workers", "1", "--scenes", _first_scene(root)
    )
    status = subprocess.run(
        cli_command("status", "--store", str(store)),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0 and "done 1" in status.stdout, status.stdout + status.stderr
    # With --root the scene is compared with the settings it was made with (up to date); with another
    # target resolution it is stale.
    for extra, expected in (((), "done 1"), (("--target-resolution", "920"), "stale 1")):
        compared = subprocess.run(
            cli_command("status", "--store", str(store), "--root", str(root), *extra),
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert expected in compared.stdout, compared.stdout + compared.stderr
    out = tmp_path / "legacy"
    export = subprocess.run(
        cli_command("export-legacy", "--store", str(store), "--out", str(out)),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert export.returncode == 0, export.stderr
    meta = np.load(out / "all_metadata.npz")
    assert list(meta["scenes"]) == [_first_scene(root)] and len(meta["images"]) == 3
    assert (out / "categories.json").is_file()


def test_unknown_scene_is_one_clear_error(dataset, prefect_server, tmp_path):
    import subprocess

    from _preprocess_support import REPO

    root, pairs = dataset
    result = subprocess.run(
        cli_command("preprocess", "--root", str(root), "--store", str(tmp_path / "s"), "--scenes", "nope"),
        cwd=REPO,
        env=cli_env(*prefect_server),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "--scenes names nope" in result.stderr


def _first_scene(root):
    return sorted(p.name for p in (root / "data").iterdir())[0]
