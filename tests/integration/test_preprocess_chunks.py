"""The `preprocess` flow with scenes split into frame chunks: a failing chunk fails its scene alone and commits
nothing of it, a re-run completes it, and a further run skips every committed scene."""

from __future__ import annotations

import pytest
from _preprocess_support import cli_env, make_root, run_preprocess

from datasets.scannetpp.reader import read_scene
from datasets.store.reader import StoreReader
from datasets.store.schema import SHARD_FRAMES, StoreLayout
from datasets.store.tables import read_table

pytestmark = pytest.mark.slow

FRAMES = SHARD_FRAMES + 4  # two chunks per scene at --frames-per-task 16


def test_a_failing_chunk_fails_its_scene_alone_then_reruns_complete_and_skip(prefect_server, tmp_path):
    root, pairs = make_root(tmp_path / "synthetic", num_scenes=2, seed=7, frames=FRAMES)
    env = cli_env(*prefect_server)
    store = tmp_path / "store"
    broken, healthy = sorted(p.name for p in (root / "data").iterdir())
    image = read_scene(root, broken, pairs).frames[SHARD_FRAMES].image_path  # the second chunk's first frame
    original = image.read_bytes()
    image.write_bytes(b"not a jpeg")
    chunked = ("--workers", "2", "--frames-per-task", str(SHARD_FRAMES))

    result, summary = run_preprocess(env, root, pairs, store, tmp_path / "s1.json", *chunked)
    assert result.returncode == 1
    assert summary["done"] == [healthy] and list(summary["failed"]) == [broken]
    assert "cannot be decoded" in summary["failed"][broken]
    assert StoreReader(store).scene_ids() == [healthy], "nothing of the failed scene is visible"
    staging = StoreLayout(store).staging_dir
    assert not staging.exists() or not any(staging.iterdir()), "the failed scene's chunks were swept"
    scenes = read_table(store, "scenes").set_index("scene_id")
    assert scenes.loc[broken, "status"] == "failed" and scenes.loc[healthy, "status"] == "done"

    image.write_bytes(original)
    result, summary = run_preprocess(env, root, pairs, store, tmp_path / "s2.json", *chunked)
    assert result.returncode == 0, result.stderr[-3000:]
    assert summary["done"] == [broken] and summary["skipped"] == [healthy]
    reader = StoreReader(store)
    assert reader.scene_ids() == [broken, healthy] and reader.num_frames(broken) == FRAMES
    assert (reader.read_frame(broken, FRAMES - 1)["depth_mm"] > 0).any()

    _, summary = run_preprocess(env, root, pairs, store, tmp_path / "s3.json", *chunked)
    assert summary["skipped"] == [broken, healthy] and summary["done"] == []
