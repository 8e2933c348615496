"""One configuration of a sweep evaluated over a store's scenes: the scene loop, the dataset scores, the
time per scene and the peak memory. A plain function: the `evaluate` flow logs what it returns to MLflow
and the GPU benchmark prints it (the benchmark's machine has neither Prefect nor MLflow)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from datasets.evaluation.label_maps import EvalVocabulary
from datasets.evaluation.memory import PeakMemory
from datasets.evaluation.scene_run import EvalSettings, evaluate_scene_postprocessings
from datasets.evaluation.scene_scores import DatasetScores, SceneScores, aggregate, summary_metrics
from datasets.store.reader import StoreReader
from panst3r_core.predictor import Predictor

# metrics besides both PQ modes' (`summary_metrics`)
SECONDS_PER_SCENE = "seconds_per_scene"
"""Mean prediction wall time of a scene (inference + post-processing)."""
VIEWS_PER_SCENE = "views_per_scene"
PEAK_MEMORY_MB = "peak_memory_mb"
NUM_SCENES = "num_scenes"
VISUAL_VIEWS = 3
"""Views in the picture of each of the first `visual_scenes` scenes."""

SceneCallback = Callable[[SceneScores, "np.ndarray | None"], None]


@dataclass
class ConfigurationResult:
    settings: EvalSettings
    scores: DatasetScores
    """Per-scene and aggregated scores in both PQ modes (tables: `per_scene_rows`, `per_class_rows`)."""
    metrics: dict[str, float]
    """Both PQ modes' summary metrics, plus seconds and views per scene, peak memory and the scene count."""
    memory_kind: str
    """What `peak_memory_mb` measures (`datasets.evaluation.memory`)."""


def evaluate_configuration(
    predictor: Predictor,
    reader: StoreReader,
    scene_ids: Sequence[str],
    settings: EvalSettings,
    vocabulary: EvalVocabulary,
    visual_scenes: int = 0,
    on_scene: SceneCallback | None = None,
) -> ConfigurationResult:
    """Predict and score every scene (in order) with one configuration. `on_scene(scores, picture)` follows
    each scene; the picture (image | GT | prediction, (H, W, 3) uint8) comes for the first `visual_scenes`."""
    callbacks = None if on_scene is None else [on_scene]
    return evaluate_configurations(
        predictor, reader, scene_ids, [settings], vocabulary, visual_scenes, callbacks
    )[0]


def evaluate_configurations(
    predictor: Predictor,
    reader: StoreReader,
    scene_ids: Sequence[str],
    settings: Sequence[EvalSettings],
    vocabulary: EvalVocabulary,
    visual_scenes: int = 0,
    on_scene: Sequence[SceneCallback] | None = None,
) -> list[ConfigurationResult]:
    """`evaluate_configuration` for configurations that differ only in their post-processing: each scene's
    inference runs once and every post-processing reads it (`evaluate_scene_postprocessings`). One result
    and one callback per configuration, in order; the peak memory is the group's."""
    for one in settings:
        one.validate()
    if not scene_ids:
        raise ValueError("no scenes to evaluate; check the split and the store")
    per_configuration: list[list[SceneScores]] = [[] for _ in settings]
    with PeakMemory(str(predictor.device)) as memory:
        for index, scene_id in enumerate(scene_ids):
            views = VISUAL_VIEWS if index < visual_scenes else 0
            scored = evaluate_scene_postprocessings(predictor, reader, scene_id, settings, vocabulary, views)
            for position, (scores, picture) in enumerate(scored):
                per_configuration[position].append(scores)
                if on_scene is not None:
                    on_scene[position](scores, picture)
    return [
        _result(one, results, vocabulary, memory)
        for one, results in zip(settings, per_configuration, strict=True)
    ]


def _result(
    settings: EvalSettings, results: list[SceneScores], vocabulary: EvalVocabulary, memory: PeakMemory
) -> ConfigurationResult:
    dataset = aggregate(results, vocabulary)
    metrics = summary_metrics(dataset)
    metrics[SECONDS_PER_SCENE] = sum(s.extra["seconds"] for s in results) / len(results)
    metrics[VIEWS_PER_SCENE] = sum(s.num_views for s in results) / len(results)
    metrics[PEAK_MEMORY_MB] = memory.megabytes()
    metrics[NUM_SCENES] = float(len(results))
    return ConfigurationResult(settings, dataset, metrics, memory.kind)
