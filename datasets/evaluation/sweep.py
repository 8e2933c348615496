"""One configuration of a sweep evaluated over a store's scenes: the scene loop, the dataset scores, the
time per scene and the peak memory. A plain function: the `evaluate` flow logs what it returns to MLflow
and the GPU benchmark prints it (the benchmark's machine has neither Prefect nor MLflow)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from datasets.evaluation.label_maps import EvalVocabulary
from datasets.evaluation.memory import PeakMemory
from datasets.evaluation.scene_run import EvalSettings, evaluate_scene
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
    settings.validate()
    if not scene_ids:
        raise ValueError("no scenes to evaluate; check the split and the store")
    results = []
    with PeakMemory(str(predictor.device)) as memory:
        for index, scene_id in enumerate(scene_ids):
            views = VISUAL_VIEWS if index < visual_scenes else 0
            scores, picture = evaluate_scene(predictor, reader, scene_id, settings, vocabulary, views)
            results.append(scores)
            if on_scene is not None:
                on_scene(scores, picture)
    dataset = aggregate(results, vocabulary)
    metrics = summary_metrics(dataset)
    metrics[SECONDS_PER_SCENE] = sum(s.extra["seconds"] for s in results) / len(results)
    metrics[VIEWS_PER_SCENE] = sum(s.num_views for s in results) / len(results)
    metrics[PEAK_MEMORY_MB] = memory.megabytes()
    metrics[NUM_SCENES] = float(len(results))
    return ConfigurationResult(settings, dataset, metrics, memory.kind)
