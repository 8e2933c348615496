"""A ScanNet++-shaped synthetic scene (fisheye DSLR, >= 200k faces, >= 150 objects; 12 frames at half the
real size to fit 2 CPU cores) through the real preprocessing, end to end into a store."""

from __future__ import annotations

import numpy as np
from _preprocess_support import preprocess_in_process

from datasets.store.reader import StoreReader
from datasets.store.tables import read_table
from datasets.synthetic.generate import generate_dataset


def test_realistic_scene_preprocesses_end_to_end(tmp_path):
    root, pairs = tmp_path / "root", tmp_path / "pairs"
    (scene_id,) = generate_dataset(
        root, 1, seed=5, frames=12, image_size=(876, 584), pairs_dir=pairs, mesh_faces=200_000, objects=150
    )
    assert (root / "data" / scene_id / "dslr/colmap/cameras.txt").read_text().splitlines()[3].split()[1] == (
        "OPENCV_FISHEYE"
    )
    store = preprocess_in_process(root, tmp_path / "store", target_resolution=512, pairs=pairs)

    scenes = read_table(store, "scenes").set_index("scene_id")
    assert scenes.loc[scene_id, "status"] == "done" and scenes.loc[scene_id, "frames"] == 12
    reader = StoreReader(store)
    cls_sep = reader.cls_sep()
    instances = set()
    for index in range(reader.num_frames(scene_id)):
        frame = reader.read_frame(scene_id, index)
        height, width = frame["image"].shape[:2]  # undistorted and rescaled down from 876x584
        assert width < 876 and frame["depth_mm"].shape == frame["panoptic"].shape == (height, width)
        assert (frame["depth_mm"] > 0).mean() > 0.9  # a closed room: depth nearly everywhere
        instances |= set(np.unique(frame["panoptic"] // cls_sep).tolist()) - {0}
    assert len(instances) >= 20  # many objects are visible, each its own instance
