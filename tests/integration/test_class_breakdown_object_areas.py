"""The class-breakdown benchmark's ground-truth object sizes, on a store of two preprocessed synthetic scenes:
every object of a split's scenes is counted once under its category, with its median share of the views that
see it."""

from __future__ import annotations

import numpy as np
from _preprocess_support import make_root, preprocess_in_process
from benchmark_scripts import load_benchmark


def _bench():
    return load_benchmark("class_breakdown")


def test_object_areas_of_a_real_store(tmp_path):
    from datasets.store.reader import StoreReader
    from datasets.store.tables import read_table

    root, pairs = make_root(tmp_path / "data", num_scenes=2, seed=11, frames=3)
    store = preprocess_in_process(root, tmp_path / "store", target_resolution=64, pairs=pairs)
    scenes = read_table(store, "scenes")
    split = str(scenes["split"].iloc[0])
    chosen = scenes.loc[scenes["split"].astype(str) == split, "scene_id"].astype(str).tolist()
    areas = _bench().object_areas(store, split=split)

    reader = StoreReader(store)
    objects, shares_of_first = set(), []
    first_id = None
    for scene_id in chosen:
        for frame in range(reader.num_frames(scene_id)):
            panoptic = reader.read_pixels(scene_id, frame)["panoptic"].astype(np.int64)
            present = set(np.unique(panoptic[panoptic > 0]).tolist())
            objects |= {(scene_id, i) for i in present}
            if scene_id == chosen[0]:
                first_id = first_id or min(present)
                if first_id in present:
                    shares_of_first.append(float((panoptic == first_id).mean()))
    assert sum(len(values) for values in areas.values()) == len(objects)
    assert all(0.0 < share <= 1.0 for values in areas.values() for share in values)
    category = first_id % reader.cls_sep()
    assert float(np.median(shares_of_first)) in areas[category]
