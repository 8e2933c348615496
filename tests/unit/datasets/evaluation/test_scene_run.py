"""One configuration on one store scene: views, prediction, alignment, both PQ modes, the picture."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datasets.evaluation.label_maps import EvalVocabulary
from datasets.evaluation.scene_run import EvalSettings, evaluate_scene, view_indices
from datasets.store.reader import StoreReader
from datasets.training.toy_store import TOY_CLASSES, write_toy_store
from panst3r_core.reconstruction import PanopticReconstruction, Segment

CLS_SEP = 256


@pytest.fixture(scope="module")
def toy_store(tmp_path_factory):
    return write_toy_store(tmp_path_factory.mktemp("eval_store") / "store", scenes=1, frames=4, split="val")


class GroundTruthPredictor:
    """Predicts the store's own GT, with segment ids shared by all views and a vocabulary in another order
    than the store's: what a perfect model returns."""

    def __init__(self, reader: StoreReader, scene_id: str):
        self.reader, self.scene_id = reader, scene_id

    def predict(self, images, class_names=None, **_) -> PanopticReconstruction:
        names = list(reversed(TOY_CLASSES))
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
                class_id=names.index(TOY_CLASSES[i % CLS_SEP]),
                class_name=TOY_CLASSES[i % CLS_SEP],
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


def test_view_indices_spread_evenly():
    assert view_indices(5, None) == [0, 1, 2, 3, 4]
    assert view_indices(10, 3) == [0, 4, 9]  # rounded linspace 0, 4.5, 9 (round half to even)
    assert view_indices(3, 8) == [0, 1, 2]


def test_settings_are_checked():
    with pytest.raises(ValueError, match="keyframes"):
        EvalSettings(keyframes=0).validate()
    with pytest.raises(ValueError, match="query_vocabulary"):
        EvalSettings(query_vocabulary="coco").validate()


def test_the_ground_truth_as_prediction_scores_one_in_both_modes(toy_store):
    reader = StoreReader(toy_store)
    scene_id = reader.scene_ids()[0]
    vocabulary = EvalVocabulary.from_categories(reader.categories())
    scores, picture = evaluate_scene(
        GroundTruthPredictor(reader, scene_id), reader, scene_id, EvalSettings(), vocabulary, CLS_SEP, 2
    )
    assert scores.num_views == 4
    assert scores.scene.all.pq == pytest.approx(1.0) and scores.scene.all.n >= 3
    assert scores.coco.all.pq == pytest.approx(1.0)
    assert scores.coco_stats[TOY_CLASSES.index("wall") + 1].tp == 4  # one wall per view, matched by name
    assert scores.extra["seconds"] >= 0 and "seconds_inference" in scores.extra
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
    assert picture.shape[1] > 3 * 80  # three columns of at least the prediction's width


def test_a_real_tiny_model_runs_through(toy_store, tmp_path):
    from panst3r_core.checkpoint.ours import save_checkpoint
    from panst3r_core.model.variants import build_model
    from panst3r_core.predictor import Predictor

    torch.set_num_threads(1)
    torch.manual_seed(0)
    checkpoint = save_checkpoint(
        build_model("tiny_v1"), tmp_path / "model", metadata={"text_embeddings": "hashed"}
    )
    reader = StoreReader(toy_store)
    scene_id = reader.scene_ids()[0]
    vocabulary = EvalVocabulary.from_categories(reader.categories())
    settings = EvalSettings(postprocess="standard_v1", keyframes=2, max_views=3, image_size=160)
    scores, picture = evaluate_scene(
        Predictor(weights=checkpoint), reader, scene_id, settings, vocabulary, CLS_SEP
    )
    assert scores.num_views == 3 and picture is None
    assert 0.0 <= scores.scene.all.pq <= 1.0 and 0.0 <= scores.coco.all.pq <= 1.0
    assert scores.coco_stats.per_class  # GT segments were counted (as FN at least)
    assert scores.extra["seconds"] > 0
