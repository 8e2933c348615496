"""A toy store with one held-out scene and a predictor that returns the store's own ground truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from toy_store import TOY_CLASSES, write_toy_store

from datasets.store.reader import StoreReader
from panst3r_core.reconstruction import PanopticReconstruction, Segment


@pytest.fixture(scope="module")
def toy_store(tmp_path_factory):
    return write_toy_store(tmp_path_factory.mktemp("eval_store") / "store", scenes=1, frames=4, split="val")


class GroundTruthPredictor:
    """Predicts the store's own GT, with segment ids shared by all views and a vocabulary in another order
    than the store's: what a perfect model returns."""

    device = torch.device("cpu")

    def __init__(self, reader: StoreReader, scene_id: str):
        self.reader, self.scene_id = reader, scene_id

    def predict_postprocessings(self, images, postprocessings, class_names=None, **_):
        return [self.predict(images, class_names) for _ in postprocessings]

    def predict(self, images, class_names=None, **_) -> PanopticReconstruction:
        names = list(reversed(TOY_CLASSES))
        cls_sep = self.reader.cls_sep()
        frames = [
            self.reader.read_frame(self.scene_id, i) for i in range(self.reader.num_frames(self.scene_id))
        ]
        frames = [f for f in frames if any(np.array_equal(f["image"], image) for image in images)]
        panoptic = [f["panoptic"].astype(np.int32) for f in frames]
        segment_ids = sorted({int(i) for view in panoptic for i in np.unique(view)} - {0})
        segments = [
            Segment(
                id=i,
                query_id=0,
                class_id=names.index(TOY_CLASSES[i % cls_sep]),
                class_name=TOY_CLASSES[i % cls_sep],
                score=1.0,
                area_per_view=[int((view == i).sum()) for view in panoptic],
            )
            for i in segment_ids
        ]
        empty = [np.zeros(view.shape, np.float32) for view in panoptic]
        return PanopticReconstruction(
            images=[f["image"] for f in frames],
            panoptic=panoptic,
            panoptic_conf=empty,
            pts3d=empty,
            pts3d_local=empty,
            confidence=empty,
            focal=np.ones(len(frames), np.float32),
            cam_to_world=np.tile(np.eye(4, dtype=np.float32), (len(frames), 1, 1)),
            segments=segments,
            class_names=names,
            keyframes=[0],
            postprocess="standard_v2",
            timings={"inference": 0.0},
        )


@pytest.fixture
def ground_truth_predictor():
    """The class: `ground_truth_predictor(reader, scene_id)`."""
    return GroundTruthPredictor
