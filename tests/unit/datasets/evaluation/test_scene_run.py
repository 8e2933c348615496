"""One configuration on one store scene: views, prediction, alignment, both PQ modes, the picture."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from toy_store import TOY_CLASSES, write_toy_store

from datasets.evaluation.label_maps import EvalVocabulary
from datasets.evaluation.scene_run import EvalSettings, evaluate_scene, view_indices
from datasets.store.reader import StoreReader


def test_view_indices_spread_evenly():
    assert view_indices(5, None) == [0, 1, 2, 3, 4]
    assert view_indices(10, 3) == [0, 4, 9]  # rounded linspace 0, 4.5, 9 (round half to even)
    assert view_indices(3, 8) == [0, 1, 2]


def test_settings_are_checked():
    with pytest.raises(ValueError, match="keyframes"):
        EvalSettings(keyframes=0).validate()
    with pytest.raises(ValueError, match="query_vocabulary"):
        EvalSettings(query_vocabulary="coco").validate()


def test_the_ground_truth_as_prediction_scores_one_in_both_modes(toy_store, ground_truth_predictor):
    reader = StoreReader(toy_store)
    scene_id = reader.scene_ids()[0]
    vocabulary = EvalVocabulary.from_categories(reader.categories())
    scores, picture = evaluate_scene(
        ground_truth_predictor(reader, scene_id), reader, scene_id, EvalSettings(), vocabulary, 2
    )
    assert scores.num_views == 4
    assert scores.scene.all.pq == pytest.approx(1.0) and scores.scene.all.n >= 3
    assert scores.coco.all.pq == pytest.approx(1.0)
    assert scores.coco_stats[TOY_CLASSES.index("wall") + 1].tp == 4  # one wall per view, matched by name
    assert scores.extra["seconds"] >= 0 and "seconds_inference" in scores.extra
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
    assert picture.shape[1] > 3 * 80  # three columns of at least the prediction's width


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A tiny_v1 checkpoint of fixed random weights."""
    from panst3r_core.checkpoint.ours import save_checkpoint
    from panst3r_core.model.variants import build_model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny") / "model"
    return save_checkpoint(build_model("tiny_v1"), folder, metadata={"text_embeddings": "hashed"})


def _first_scene(store):
    reader = StoreReader(store)
    return reader, reader.scene_ids()[0], EvalVocabulary.from_categories(reader.categories())


def test_a_real_tiny_model_runs_through(toy_store, tiny_checkpoint):
    from panst3r_core.predictor import Predictor

    torch.set_num_threads(1)
    reader, scene_id, vocabulary = _first_scene(toy_store)
    settings = EvalSettings(postprocess="standard_v1", keyframes=2, max_views=3, image_size=160)
    predictor = Predictor(weights=tiny_checkpoint)
    scores, picture = evaluate_scene(predictor, reader, scene_id, settings, vocabulary)
    assert scores.num_views == 3 and picture is None
    assert 0.0 <= scores.scene.all.pq <= 1.0 and 0.0 <= scores.coco.all.pq <= 1.0
    assert scores.coco_stats.per_class  # GT segments were counted (as FN at least)
    assert scores.extra["seconds"] > 0


def test_store_ids_are_split_with_the_store_cls_sep(tmp_path, ground_truth_predictor):
    # ids written as instance * 1000 + class and recorded so: only a reader-given cls_sep scores them right
    store = write_toy_store(tmp_path / "store", scenes=1, frames=3, cls_sep=1000)
    reader = StoreReader(store)
    scene_id = reader.scene_ids()[0]
    vocabulary = EvalVocabulary.from_categories(reader.categories())
    predictor = ground_truth_predictor(reader, scene_id)
    scores, _ = evaluate_scene(predictor, reader, scene_id, EvalSettings(), vocabulary)
    assert reader.cls_sep() == 1000 and scores.scene.all.pq == pytest.approx(1.0)


def test_post_processing_options_of_the_settings_reach_the_predictor(toy_store, tiny_checkpoint):
    from panst3r_core.predictor import Predictor

    class RecordingPredictor(Predictor):
        def predict_postprocessings(self, images, postprocessings, **kwargs):
            recons = super().predict_postprocessings(images, postprocessings, **kwargs)
            self.seen = (list(postprocessings), [len(recon.segments) for recon in recons])
            return recons

    torch.set_num_threads(1)
    reader, scene_id, vocabulary = _first_scene(toy_store)
    predictor = RecordingPredictor(weights=tiny_checkpoint)
    # no class probability is above 1: every query is dropped, every pixel void
    settings = EvalSettings(postprocess="standard_v2:cls_threshold=1.0", max_views=2, image_size=160)
    scores, _ = evaluate_scene(predictor, reader, scene_id, settings, vocabulary)
    assert predictor.seen == ([("standard_v2", {"cls_threshold": 1.0})], [0])
    assert scores.coco.all.pq == 0.0 and all(s.tp == 0 for s in scores.coco_stats.per_class.values())
