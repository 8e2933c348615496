"""A scene in frame chunks: the same store content as one task per scene, one mesh per scene per process."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from datasets.preprocess import chunk_job
from datasets.preprocess.chunk_job import (
    FrameChunk,
    cached_scene,
    commit_chunked_scene,
    run_frame_chunk,
    split_frames,
    stage_chunked_scene,
)
from datasets.preprocess.errors import BadSceneInput
from datasets.preprocess.result import PreprocessConfig
from datasets.preprocess.scene_job import run_scene
from datasets.scannetpp.reader import read_scene
from datasets.store import writer
from datasets.store.finalize import finalize_store
from datasets.store.hashing import source_hash
from datasets.store.schema import SHARD_FRAMES, StoreLayout
from datasets.store.tables import read_table
from datasets.store.writer import CameraLayout

CONFIG = PreprocessConfig(target_resolution=64)
FRAMES = SHARD_FRAMES + 4  # two chunks: a full shard and a partial one


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Two real synthetic scenes of FRAMES small frames, generated once for this module."""
    from datasets.synthetic.generate import generate_dataset

    root = tmp_path_factory.mktemp("synthetic")
    scene_ids = generate_dataset(root, 2, seed=5, frames=FRAMES, image_size=(96, 64), iphone=False)
    return root, sorted(scene_ids)


@pytest.fixture(autouse=True)
def empty_cache():
    chunk_job.clear_scene_cache()
    yield
    chunk_job.clear_scene_cache()


def _source(root, scene_id):
    return source_hash(read_scene(root, scene_id).source_files, root)


def _run_chunked(root, store, scene_id, frames_per_task=SHARD_FRAMES):
    staged = stage_chunked_scene(store, root, scene_id, CONFIG, None, frames_per_task)
    assert staged is not None and len(staged.chunks) == 2
    source = _source(root, scene_id)
    results = [
        run_frame_chunk(root, store, scene_id, CONFIG, None, source, staged.staging, chunk)
        for chunk in staged.chunks
    ]
    return commit_chunked_scene(root, store, scene_id, CONFIG, None, "train", source, staged.staging, results)


def test_chunks_are_whole_shards_spread_evenly():
    layout = [
        CameraLayout("dslr", tuple(f"f{i}" for i in range(150)), 4, 4),
        CameraLayout("iphone", ("a",), 2, 2),
    ]
    chunks = split_frames(layout, 32)
    assert [(c.start, c.stop) for c in chunks if c.camera == "dslr"] == [
        (0, 32), (32, 64), (64, 96), (96, 128), (128, 150)
    ]  # fmt: skip
    assert chunks[-1] == FrameChunk("iphone", 0, 1)
    # 20 frames per task round up to whole shards; 10 shards over 4 tasks: 3, 3, 2, 2 shards.
    starts = [c.start for c in split_frames(layout[:1], 40)]
    assert starts == [0, 48, 96, 128]
    assert all(c.start % SHARD_FRAMES == 0 for c in chunks)


def test_chunked_scene_equals_the_whole_scene_bit_for_bit(generated, tmp_path):
    root, (scene_id, _) = generated
    whole, chunked = tmp_path / "whole", tmp_path / "chunked"
    for store in (whole, chunked):
        writer.open_or_create_store(store)
    run_scene(root, whole, scene_id, CONFIG, None, "train", _source(root, scene_id))
    summary = _run_chunked(root, chunked, scene_id)
    assert summary["frames"] == FRAMES and summary["status"] == "done"

    def files(store):
        scene_dir = StoreLayout(store).scene_dir(scene_id)
        return {p.relative_to(scene_dir): p.read_bytes() for p in sorted(scene_dir.rglob("*")) if p.is_file()}

    a, b = files(whole), files(chunked)
    assert sorted(a) == sorted(b)
    differing = [str(p) for p in a if a[p] != b[p]]
    assert differing == ["zarr.json"], "every array's metadata and every shard file are byte-identical"
    attrs_a, attrs_b = (_scene_attrs(store, scene_id) for store in (whole, chunked))
    for attrs in (attrs_a, attrs_b):
        del attrs["timings"], attrs["committed_at"]
    assert attrs_a == attrs_b
    assert not StoreLayout(chunked).staging_dir.exists() or not any(
        StoreLayout(chunked).staging_dir.iterdir()
    )

    for store in (whole, chunked):
        finalize_store(store, CONFIG.cls_sep)
    for name in ("frames", "pairs"):
        assert read_table(whole, name).equals(read_table(chunked, name))
    scenes_a, scenes_b = (_without_times(read_table(store, "scenes")) for store in (whole, chunked))
    assert scenes_a.equals(scenes_b)


def _scene_attrs(store, scene_id) -> dict:
    return json.loads((StoreLayout(store).scene_dir(scene_id) / "zarr.json").read_text())["attributes"]


def _without_times(table):
    """The scenes table without what differs between two runs of the same scene: stage seconds, commit time."""
    return table[[c for c in table.columns if not c.startswith("seconds") and c != "committed_at"]]


def test_a_failing_chunk_leaves_nothing_visible_and_a_rerun_completes(generated, tmp_path):
    root, (scene_id, _) = generated
    root = shutil.copytree(root, tmp_path / "root")
    store = tmp_path / "store"
    writer.open_or_create_store(store)
    staged = stage_chunked_scene(store, root, scene_id, CONFIG, None, SHARD_FRAMES)
    source = _source(root, scene_id)
    # The second chunk's first image is damaged: that chunk fails with the reader's reason.
    record = read_scene(root, scene_id)
    damaged = record.frames[SHARD_FRAMES].image_path
    original = damaged.read_bytes()
    damaged.write_bytes(b"not a jpeg")
    run_frame_chunk(root, store, scene_id, CONFIG, None, source, staged.staging, staged.chunks[0])
    with pytest.raises(BadSceneInput, match="cannot be decoded"):
        run_frame_chunk(root, store, scene_id, CONFIG, None, source, staged.staging, staged.chunks[1])
    assert writer.backend_for(store).committed_scene_ids() == []
    writer.sweep_staging(store)  # what the flow does once the scene's tasks ended
    damaged.write_bytes(original)
    _run_chunked(root, store, scene_id)
    assert writer.backend_for(store).committed_scene_ids() == [scene_id]


def test_a_scene_that_fits_one_chunk_or_an_object_store_runs_as_one_task(generated, tmp_path):
    root, (scene_id, _) = generated
    store = tmp_path / "store"
    writer.open_or_create_store(store)
    assert stage_chunked_scene(store, root, scene_id, CONFIG, None, 0) is None
    assert stage_chunked_scene(store, root, scene_id, CONFIG, None, 2 * SHARD_FRAMES) is None
    assert stage_chunked_scene(store, root, "ffffffffff", CONFIG, None, SHARD_FRAMES) is None  # unreadable
    assert not StoreLayout(store).staging_dir.exists() or not any(StoreLayout(store).staging_dir.iterdir())


def test_the_mesh_is_built_once_per_scene_and_process(generated):
    root, (first, second) = generated
    sources = {s: _source(root, s) for s in (first, second)}
    before = chunk_job.context_builds
    _, context, built = cached_scene(root, first, None, CONFIG, sources[first])
    assert built
    assert cached_scene(root, first, None, CONFIG, sources[first])[1:] == (context, False)
    cached_scene(root, second, None, CONFIG, sources[second])
    cached_scene(root, first, None, CONFIG, sources[first])
    assert chunk_job.context_builds - before == 2
    # Other inputs (source hash) or settings are another scene: built again, the cache stays bounded.
    cached_scene(root, first, None, PreprocessConfig(target_resolution=80), sources[first])
    cached_scene(root, first, None, CONFIG, "changed")
    assert chunk_job.context_builds - before == 4
    assert len(chunk_job._scene_cache) == chunk_job.CACHE_SCENES


def test_chunks_of_one_scene_build_its_mesh_once(generated, tmp_path):
    root, (scene_id, _) = generated
    store = tmp_path / "store"
    writer.open_or_create_store(store)
    before = chunk_job.context_builds
    _run_chunked(root, store, scene_id)
    assert chunk_job.context_builds - before == 1
    assert np.isfinite(_scene_attrs(store, scene_id)["timings"]["build_mesh"])


def test_staging_takes_the_scene_as_planning_read_it(generated, tmp_path, monkeypatch):
    root, (scene_id, _) = generated
    for name in ("a", "b"):
        writer.open_or_create_store(tmp_path / name)
    record = read_scene(root, scene_id)
    again = stage_chunked_scene(tmp_path / "a", root, scene_id, CONFIG, None, SHARD_FRAMES)

    def no_second_read(*args, **kwargs):
        raise AssertionError("the scene was read again")

    monkeypatch.setattr(chunk_job, "read_scene", no_second_read)
    given = stage_chunked_scene(tmp_path / "b", root, scene_id, CONFIG, None, SHARD_FRAMES, record)
    assert given is not None and again is not None and given.chunks == again.chunks
