"""Bytes flipped in real chunks of a store: `panst3r status --verify` names scene, camera, array, frame and
file with the fix, `export-legacy` and `train` stop with that message instead of a bare codec error (train
without retrying), a broken array zarr.json and a truncated table are named with their fix, and
`preprocess --redo` repairs the scene."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess

import pytest
from _preprocess_support import (
    REPO,
    TARGET_RESOLUTION,
    cli_command,
    cli_env,
    make_root,
    preprocess_in_process,
    run_preprocess,
)

from datasets.store.integrity import CorruptSceneError
from datasets.store.reader import StoreReader
from datasets.store.schema import StoreLayout
from datasets.store.tables import read_table

pytestmark = pytest.mark.slow

# The shard index at the end of a shard file: (offset, nbytes) as little-endian uint64 per chunk, then CRC32C.
_INDEX_ENTRY = struct.Struct("<QQ")


def _flip_chunk_bytes(array_dir, shard, frames: list[int]) -> None:
    """Flip one byte in the middle of each listed frame's chunk of a real shard file of `array_dir`."""
    metadata = json.loads((array_dir / "zarr.json").read_text())
    per_shard = metadata["chunk_grid"]["configuration"]["chunk_shape"][0]
    per_chunk = metadata["codecs"][0]["configuration"]["chunk_shape"][0]
    chunks = per_shard // per_chunk
    data = bytearray(shard.read_bytes())
    index_at = len(data) - 4 - _INDEX_ENTRY.size * chunks
    for frame in frames:
        offset, nbytes = _INDEX_ENTRY.unpack_from(data, index_at + _INDEX_ENTRY.size * frame)
        data[offset + nbytes // 2] ^= 0x5A
    shard.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Two synthetic scenes and a store of them, written by the function the preprocess flow's tasks run."""
    base = tmp_path_factory.mktemp("corruption")
    root, pairs = make_root(base / "data", num_scenes=2, seed=51)
    store = preprocess_in_process(root, base / "store", TARGET_RESOLUTION, pairs)
    return root, pairs, store, sorted(p.name for p in (root / "data").iterdir())


def _cli(env, *args, timeout=600):
    result = subprocess.run(cli_command(*args), cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    return result.returncode, result.stdout + result.stderr


def test_flipped_bytes_are_found_named_and_repaired(scenes, tmp_path, prefect_server):
    root, pairs, pristine, (good, damaged) = scenes
    store = tmp_path / "store"
    shutil.copytree(pristine, store)
    images = StoreLayout(store).scene_dir(damaged) / "dslr" / "images"
    shard = images / "c" / "0" / "0" / "0" / "0"
    frame_names = StoreReader(store).frame_names(damaged)
    _flip_chunk_bytes(images, shard, [0, 1, 2])
    env = cli_env(*prefect_server)

    rc, output = _cli(env, "status", "--store", str(store), "--verify")
    assert rc == 1, output
    for frame in (0, 1, 2):
        assert f"scene {damaged}, camera dslr, array images, frame {frame} ({frame_names[frame]}) is corrupt" in output
    assert str(shard) in output.replace("\n", "") and f"--redo {damaged}" in output
    assert "3 damaged" in output and good not in output.split("verified")[0].split("damaged")[-1]

    rc, output = _cli(env, "export-legacy", "--store", str(store), "--out", str(tmp_path / "legacy"))
    assert rc == 2 and "Traceback" not in output, output[-3000:]
    assert f"scene {damaged}, camera dslr, array images, frame 0" in output and f"--redo {damaged}" in output

    runs = tmp_path / "runs"
    rc, output = _cli(
        env,
        *("train", "--store", str(store), "--config", "synthetic_cpu", "--runs-dir", str(runs)),
        *("--run-name", "damaged", "--experiment", "corruption-test", "training.epochs=1"),
        *("data.samples_per_epoch=8", "data.resolutions=[[64,48]]", "data.split=null"),
        *("criterion.num_points=256", "training.num_workers=0"),
    )
    assert rc == 2, output[-4000:]
    assert f"error: store {store}: scene {damaged}, camera dslr, array images, frame" in output
    assert "Retry" not in output, "a launch that failed on damaged data was retried"

    # The fix the messages give: redo that scene; the other one stays as it was.
    _, summary = run_preprocess(env, root, pairs, store, tmp_path / "redo.json", "--redo", damaged)
    assert summary["done"] == [damaged] and summary["skipped"] == [good]
    rc, output = _cli(env, "status", "--store", str(store), "--verify")
    assert rc == 0 and "0 damaged" in output, output


def test_broken_metadata_and_tables_are_named(scenes, tmp_path):
    _, _, pristine, (_, damaged) = scenes
    store = tmp_path / "store"
    shutil.copytree(pristine, store)
    metadata = StoreLayout(store).scene_dir(damaged) / "dslr" / "depth_mm" / "zarr.json"
    metadata.write_text(metadata.read_text()[:40])
    with pytest.raises(CorruptSceneError) as caught:
        StoreReader(store).read_frame(damaged, 0)
    assert str(caught.value).startswith(f"{metadata} cannot be read") and f"--redo {damaged}" in str(caught.value)

    table = StoreLayout(store).table_path("scenes")
    table.write_bytes(table.read_bytes()[:300])
    with pytest.raises(ValueError, match=r"scenes\.parquet cannot be read .* re-run `panst3r preprocess`"):
        read_table(store, "scenes")
