"""Bad input never stops the run: each broken scene ends as one failed row with a clear message, the
good scene completes, and a failed scene is retried (and fixed) by the next run."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from _preprocess_support import cli_env, make_root, run_preprocess

from datasets.store.reader import StoreReader
from datasets.store.tables import read_table

pytestmark = pytest.mark.slow


def _truncate_ply(scene):
    ply = scene / "scans" / "mesh_aligned_0.05.ply"
    data = ply.read_bytes()
    ply.write_bytes(data[: len(data) // 2])


def _remove_colmap_file(scene):
    (scene / "dslr" / "colmap" / "cameras.txt").unlink()


def _shift_seg_indices(scene):
    path = scene / "scans" / "segments.json"
    data = json.loads(path.read_text())
    data["segIndices"] = [i + 1 for i in data["segIndices"]]
    path.write_text(json.dumps(data))


def _nan_pose(scene):
    path = scene / "dslr" / "colmap" / "images.txt"
    lines = path.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
    fields = lines[first].split()
    fields[1] = "nan"  # QW
    lines[first] = " ".join(fields)
    path.write_text("\n".join(lines) + "\n")


def _negative_focal(scene):
    """The fault that once gave a scene marked done with its RGB turned 180 degrees against its labels."""
    path = scene / "dslr" / "colmap" / "cameras.txt"
    lines = path.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
    fields = lines[first].split()
    fields[4] = str(-float(fields[4]))  # fx
    lines[first] = " ".join(fields)
    path.write_text("\n".join(lines) + "\n")


def _missing_image(scene):
    images = sorted((scene / "dslr" / "resized_images").iterdir())
    images[1].unlink()


def _empty_scene(scene):
    """No image in COLMAP and an empty selection in the pairs file."""
    path = scene / "dslr" / "colmap" / "images.txt"
    header = [line for line in path.read_text().splitlines() if line.startswith("#")]
    path.write_text("\n".join(header) + "\n")
    pairs_file = scene.parents[2] / "pairs" / scene.name / "selected_pairs.npz"
    np.savez(pairs_file, selection=np.array([], dtype="<U8"), pairs=np.zeros((0, 3)))


BREAKAGES = {
    "truncated_ply": (_truncate_ply, "mesh_aligned_0.05.ply"),
    "missing_colmap_file": (_remove_colmap_file, "cameras.txt"),
    "seg_indices": (_shift_seg_indices, "segIndices"),
    "nan_pose": (_nan_pose, "pose"),
    "missing_image": (_missing_image, "not found"),
    "empty_scene": (_empty_scene, "frames"),
    "negative_focal": (_negative_focal, "focal length fx=-"),
}


def test_each_bad_scene_fails_alone_with_a_clear_message(tmp_path, prefect_server):
    names = sorted(BREAKAGES)
    root, pairs = make_root(tmp_path / "data", num_scenes=len(names) + 1, seed=11)
    scene_ids = sorted(p.name for p in (root / "data").iterdir())
    broken = dict(zip(scene_ids, names))  # the last scene stays good
    good = scene_ids[-1]
    pristine = tmp_path / "pristine"
    shutil.copytree(root / "data", pristine / "data")
    shutil.copytree(pairs, pristine / "pairs")
    for scene_id, name in broken.items():
        BREAKAGES[name][0](root / "data" / scene_id)

    env = cli_env(*prefect_server)
    store = tmp_path / "store"
    result, summary = run_preprocess(env, root, pairs, store, tmp_path / "s1.json", "--workers", "2")
    assert result.returncode == 1, "a run with failed scenes exits 1"
    assert summary["done"] == [good]
    assert sorted(summary["failed"]) == sorted(broken)
    for scene_id, name in broken.items():
        reason = summary["failed"][scene_id]
        assert BREAKAGES[name][1] in reason, f"{name}: {reason!r}"
        assert "\n" not in reason and "Traceback" not in reason

    scenes = read_table(store, "scenes").set_index("scene_id")
    assert set(scenes.index) == set(scene_ids)
    for scene_id in broken:
        assert scenes.loc[scene_id, "status"] == "failed"
        assert scenes.loc[scene_id, "error"] == summary["failed"][scene_id]
    assert scenes.loc[good, "status"] == "done"
    assert StoreReader(store).scene_ids() == [good]

    # Repair two scenes: the next run redoes exactly the failed ones and fixes the repaired two.
    repaired = scene_ids[:2]
    for scene_id in repaired:
        shutil.rmtree(root / "data" / scene_id)
        shutil.copytree(pristine / "data" / scene_id, root / "data" / scene_id)
        shutil.copy2(
            pristine / "pairs" / scene_id / "selected_pairs.npz", pairs / scene_id / "selected_pairs.npz"
        )
    result, summary = run_preprocess(env, root, pairs, store, tmp_path / "s2.json", "--workers", "2")
    assert summary["skipped"] == [good]
    assert summary["done"] == repaired
    assert sorted(summary["failed"]) == sorted(set(broken) - set(repaired))
    scenes = read_table(store, "scenes").set_index("scene_id")
    assert all(scenes.loc[s, "status"] == "done" for s in repaired)
