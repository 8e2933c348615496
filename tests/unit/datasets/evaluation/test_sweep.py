"""One configuration over a store's scenes: the loop, the callback, the dataset scores and the meters."""

from __future__ import annotations

import pytest
import torch
from toy_store import write_toy_store

from datasets.evaluation.label_maps import EvalVocabulary
from datasets.evaluation.memory import PROCESS_KIND
from datasets.evaluation.predictors import load_predictor, model_variant
from datasets.evaluation.scene_run import EvalSettings
from datasets.evaluation.sweep import evaluate_configuration, evaluate_configurations
from datasets.store.reader import StoreReader


@pytest.fixture(scope="module")
def two_scenes(tmp_path_factory):
    return write_toy_store(tmp_path_factory.mktemp("sweep") / "store", scenes=2, frames=3, split="val")


def test_perfect_predictions_score_one_and_every_scene_reaches_the_callback(
    two_scenes, ground_truth_predictor
):
    reader = StoreReader(two_scenes)
    scenes = reader.scene_ids()
    vocabulary = EvalVocabulary.from_categories(reader.categories())

    class AllScenes:  # the ground truth of whichever scene the images come from
        device = torch.device("cpu")

        def predict_postprocessings(self, images, postprocessings, **options):
            for scene_id in scenes:
                if reader.read_frame(scene_id, 0)["image"].tobytes() == images[0].tobytes():
                    truth = ground_truth_predictor(reader, scene_id)
                    return truth.predict_postprocessings(images, postprocessings, **options)
            raise AssertionError("images of no store scene")

    seen = []
    result = evaluate_configuration(
        AllScenes(), reader, scenes, EvalSettings(), vocabulary, visual_scenes=1,
        on_scene=lambda scores, picture: seen.append((scores.scene_id, picture is not None)),
    )  # fmt: skip
    assert seen == [(scenes[0], True), (scenes[1], False)]
    assert result.metrics["PQ"] == pytest.approx(1.0) and result.metrics["coco_PQ"] == pytest.approx(1.0)
    assert result.metrics["num_scenes"] == 2 and result.metrics["views_per_scene"] == 3
    assert result.metrics["seconds_per_scene"] >= 0 and result.metrics["peak_memory_mb"] > 0
    assert result.memory_kind == PROCESS_KIND and [s.scene_id for s in result.scores.scenes] == scenes


def test_a_real_tiny_checkpoint_is_loaded_once_and_evaluated(two_scenes, tmp_path):
    from panst3r_core.checkpoint.ours import save_checkpoint
    from panst3r_core.model.variants import build_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    metadata = {"text_embeddings": "hashed", "variant": "tiny_v1"}
    checkpoint = save_checkpoint(build_model("tiny_v1"), tmp_path / "model", metadata=metadata)
    predictor = load_predictor(checkpoint, "cpu")
    assert load_predictor(checkpoint, "cpu") is predictor and model_variant(predictor) == "tiny_v1"
    reader = StoreReader(two_scenes)
    vocabulary = EvalVocabulary.from_categories(reader.categories())
    settings = EvalSettings(postprocess="standard_v1", keyframes=2, image_size=160)
    result = evaluate_configuration(predictor, reader, reader.scene_ids()[:1], settings, vocabulary)
    assert 0.0 <= result.metrics["PQ"] <= 1.0 and result.metrics["num_scenes"] == 1
    with pytest.raises(ValueError, match="no scenes"):
        evaluate_configuration(predictor, reader, [], settings, vocabulary)


def test_configurations_differing_in_post_processing_share_each_scene_inference(two_scenes, tmp_path):
    from panst3r_core.model.variants import build_model
    from panst3r_core.predictor import Predictor

    class CountingPredictor(Predictor):
        inferences = 0

        def _predict_whole(self, *args, **kwargs):
            CountingPredictor.inferences += 1
            return super()._predict_whole(*args, **kwargs)

    torch.set_num_threads(1)
    torch.manual_seed(0)
    predictor = CountingPredictor(model=build_model("tiny_v1"), metadata={"text_embeddings": "hashed"})
    reader = StoreReader(two_scenes)
    vocabulary = EvalVocabulary.from_categories(reader.categories())
    scenes = reader.scene_ids()
    settings = [
        EvalSettings(postprocess=spec, keyframes=2, image_size=160)
        for spec in ("standard_v2", "standard_v2:mask_threshold=0.0", "standard_v1")
    ]
    seen = []
    together = evaluate_configurations(
        predictor, reader, scenes, settings, vocabulary,
        on_scene=[lambda scores, _, i=i: seen.append((i, scores.scene_id)) for i in range(3)],
    )  # fmt: skip
    assert CountingPredictor.inferences == len(scenes)
    assert seen == [(i, scene) for scene in scenes for i in range(3)]
    for one, result in zip(settings, together, strict=True):
        alone = evaluate_configuration(predictor, reader, scenes, one, vocabulary)
        assert result.settings == one
        assert {k: v for k, v in result.metrics.items() if k in ("PQ", "coco_PQ", "PQ_th", "PQ_st")} == {
            k: v for k, v in alone.metrics.items() if k in ("PQ", "coco_PQ", "PQ_th", "PQ_st")
        }
        assert result.metrics["seconds_per_scene"] > 0
    with pytest.raises(ValueError, match="only in their post-processing"):
        evaluate_configurations(
            predictor, reader, scenes, [settings[0], EvalSettings(keyframes=1)], vocabulary
        )
