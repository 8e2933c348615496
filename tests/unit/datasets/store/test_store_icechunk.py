"""The object-store backend against a real S3-compatible server (SeaweedFS, started by the session fixture):
the same writer, reader, tables and failure records as a directory store, committed as Icechunk snapshots."""

from __future__ import annotations

import multiprocessing
import socket
import uuid

import numpy as np
import pytest
from toy_store import toy_scene, write_toy_scene

from datasets.store import writer
from datasets.store.backend import backend_for
from datasets.store.failures import clear_failure, read_failures, write_failure
from datasets.store.finalize import finalize_store
from datasets.store.location import StoreLocation
from datasets.store.queries import content_hash, store_version
from datasets.store.reader import StoreReader
from datasets.store.tables import read_table

HASHES = {"source_hash": "src", "config_hash": "cfg", "code_version": "0+test"}


@pytest.fixture
def store(s3_env) -> str:
    url = s3_env.url(f"unit/{uuid.uuid4().hex[:8]}")
    writer.open_or_create_store(url)
    return url


def test_scenes_round_trip_and_every_commit_is_a_snapshot(store, make_scene):
    first = make_scene("aaa", seed=1, dslr=3, iphone=2)
    writer.write_scene(store, first, **HASHES)
    writer.write_scene(store, make_scene("bbb", seed=2, dslr=2, iphone=0), **HASHES)

    reader = StoreReader(store)
    assert reader.scene_ids() == ["aaa", "bbb"]
    frame = reader.read_frame("aaa", 4)  # selection order: 3 DSLR frames, then the iPhone ones
    np.testing.assert_array_equal(frame["image"], first.blocks["iphone"].images[1])
    np.testing.assert_array_equal(reader.pairs("aaa"), first.pairs)
    version = reader.version()
    assert version.kind == "snapshot" and version == store_version(store)
    messages = [v.message for v in backend_for(store).history(10)]
    assert messages[:3] == ["commit scene bbb", "commit scene aaa", "create the store"]


def test_a_recommit_replaces_the_scene_in_one_snapshot(store, make_scene):
    writer.write_scene(store, make_scene("aaa", seed=1, dslr=3, iphone=2), **HASHES)
    newer = make_scene("aaa", seed=9, dslr=2, iphone=0)
    writer.write_scene(store, newer, **HASHES)
    reader = StoreReader(store)
    assert reader.scene_ids() == ["aaa"]
    assert list(reader.camera_frame_names("aaa")) == ["dslr"], (
        "the old iphone group went with the old version"
    )
    np.testing.assert_array_equal(reader.read_array("aaa", "dslr", "images"), newer.blocks["dslr"].images)


def test_a_writer_that_fails_half_way_leaves_nothing_visible(store, make_scene):
    writer.write_scene(store, make_scene("aaa"), **HASHES)
    before = store_version(store)
    broken = make_scene("bbb")
    broken.blocks["dslr"].names.append("extra")  # fails the block check after nothing was committed
    with pytest.raises(ValueError, match="bbb"):
        writer.write_scene(store, broken, **HASHES)

    def fail_mid_write(group):
        group.create_group("dslr")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        backend_for(store).commit_scene("ccc", fail_mid_write)
    assert StoreReader(store).scene_ids() == ["aaa"]
    assert store_version(store) == before, "no snapshot was made by the failed writers"


@pytest.mark.slow
def test_concurrent_writers_never_corrupt_each_other(store):
    scene_ids = [f"s{i:02d}" for i in range(9)]
    context = multiprocessing.get_context("spawn")  # Icechunk cannot run in a forked child
    with context.Pool(3) as pool:
        pool.starmap(write_toy_scene, [(store, scene_id, seed) for seed, scene_id in enumerate(scene_ids)])
    reader = StoreReader(store)
    assert reader.scene_ids() == scene_ids
    for seed, scene_id in enumerate(scene_ids):
        expected = toy_scene(scene_id, seed).blocks["iphone"]
        np.testing.assert_array_equal(reader.read_array(scene_id, "iphone", "images"), expected.images)
        np.testing.assert_array_equal(reader.read_array(scene_id, "iphone", "panoptic"), expected.panoptic)


def test_a_pinned_location_reads_its_snapshot_only(store, make_scene):
    writer.write_scene(store, make_scene("aaa"), **HASHES)
    pinned = StoreLocation.parse(store).pinned(store_version(store).id)
    writer.write_scene(store, make_scene("bbb"), **HASHES)
    assert StoreReader(str(pinned)).scene_ids() == ["aaa"]
    assert StoreReader(store).scene_ids() == ["aaa", "bbb"]
    with pytest.raises(ValueError, match="pinned to a snapshot"):
        writer.write_scene(str(pinned), make_scene("ccc"), **HASHES)


def test_a_pinned_location_reads_the_tables_of_its_snapshot(store, make_scene):
    writer.write_scene(store, make_scene("aaa"), **HASHES)
    finalize_store(store, cls_sep=256)
    pinned = str(StoreLocation.parse(store).pinned(store_version(store).id))
    writer.write_scene(store, make_scene("bbb"), **HASHES)
    finalize_store(store, cls_sep=256)  # the stored tables now follow the newer snapshot
    assert list(read_table(store, "scenes")["scene_id"]) == ["aaa", "bbb"]
    assert list(read_table(pinned, "scenes")["scene_id"]) == ["aaa"]
    assert set(read_table(pinned, "pairs")["scene_id"]) == {"aaa"}
    assert content_hash(pinned) != content_hash(store)


def test_tables_and_failure_records_live_beside_the_repository(store, make_scene):
    writer.write_scene(store, make_scene("aaa"), **HASHES)
    write_failure(store, "bbb", "ValueError", "bad input")
    assert list(read_failures(store)) == ["bbb"]
    finalize_store(store, cls_sep=256)
    scenes = read_table(store, "scenes")
    assert dict(zip(scenes["scene_id"], scenes["status"], strict=True)) == {"aaa": "done", "bbb": "failed"}
    assert len(read_table(store, "frames")) == 5
    assert StoreReader(store).categories(), "finalize records the vocabulary in the root attributes"
    clear_failure(store, "bbb")
    assert read_failures(store) == {}
    assert len(content_hash(store)) == 64


def test_a_prefix_holding_other_objects_is_refused(s3_env):
    url = s3_env.url(f"unit/{uuid.uuid4().hex[:8]}")
    backend_for(url).write_file("notes.txt", b"someone else's data")
    with pytest.raises(ValueError, match="notes.txt, not a scene store"):
        writer.open_or_create_store(url)


def test_a_missing_store_is_named(s3_env):
    url = s3_env.url(f"unit/{uuid.uuid4().hex[:8]}")
    with pytest.raises(FileNotFoundError, match="no scene store at s3://"):
        StoreReader(url)


def test_refused_credentials_are_one_clear_error(s3_env, monkeypatch):
    url = s3_env.url(f"unit/{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(
        ConnectionError, match=f"{url}/tables/scenes.parquet: the object store at http://127.0.0.1:"
    ):
        backend_for(url).read_file("tables/scenes.parquet")
    with pytest.raises(ConnectionError, match="AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"):
        StoreReader(url)


@pytest.mark.slow  # the clients retry before giving up: about 4 s (obstore) + 26 s (Icechunk) here
def test_an_unreachable_endpoint_is_one_clear_error(monkeypatch):
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
    for name, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    url = f"s3://bucket/{uuid.uuid4().hex[:8]}"
    with pytest.raises(ConnectionError, match=f"{url}/tables/scenes.parquet: the object store at {endpoint}"):
        backend_for(url).read_file("tables/scenes.parquet")
    with pytest.raises(ConnectionError, match=f"store {url}: the object store at {endpoint}") as refused:
        StoreReader(url)
    assert "check AWS_ENDPOINT_URL (or --s3-endpoint)" in str(refused.value)
