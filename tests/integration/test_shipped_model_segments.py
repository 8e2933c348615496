"""The shipped synthetic model segments a preprocessed synthetic scene it never saw (make run's seed 0; it was
trained on scenes of seed 1000)."""

from __future__ import annotations

import numpy as np
import pytest
from _preprocess_support import preprocess_in_process

from datasets.store.reader import StoreReader
from datasets.synthetic.generate import generate_dataset
from panst3r_core.predictor import Predictor
from panst3r_core.pretrained import shipped_model


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_the_shipped_model_segments_an_unseen_scene(tmp_path):
    root = tmp_path / "root"
    generate_dataset(root, 1, seed=0, frames=6, image_size=(320, 240))
    reader = StoreReader(preprocess_in_process(root, tmp_path / "store", target_resolution=256))
    scene = reader.scene_ids()[0]
    frames = [reader.read_frame(scene, i) for i in range(reader.num_frames(scene))]
    names = [category["name"] for category in reader.categories()]
    recon = Predictor(shipped_model()).predict(
        [f["image"] for f in frames], class_names=names, image_size=256
    )
    predicted = {segment.class_name for segment in recon.segments}
    assert {"wall", "floor"} <= predicted, predicted
    assert np.mean([np.mean(view > 0) for view in recon.panoptic]) > 0.5  # most pixels belong to a segment
    # the floor segment lies on the ground truth's floor
    floor = next(s.id for s in recon.segments if s.class_name == "floor")
    gt_floor_class = names.index("floor")
    on_floor = [
        np.mean((frame["panoptic"] % reader.cls_sep() == gt_floor_class)[view == floor])
        for frame, view in zip(frames, recon.panoptic)
        if np.any(view == floor)
    ]
    assert np.mean(on_floor) > 0.7
