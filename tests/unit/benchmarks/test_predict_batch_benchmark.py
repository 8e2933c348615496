"""The batch prediction benchmark's own arithmetic: the steady rate is the time between one worker's
consecutive scenes, its first scene (the one that also loaded the model) left out."""

from __future__ import annotations

from benchmark_scripts import load_benchmark


def _load_script():
    return load_benchmark("predict_batch")


def test_steady_seconds_are_the_gaps_between_one_workers_scenes():
    steady = _load_script().steady_seconds_per_scene
    done = {  # completion order; a scene's own seconds (predict + export) overlap the next one's
        "a": {"predictor": "w1", "finished_at": 130.0},  # loaded the model
        "b": {"predictor": "w2", "finished_at": 131.0},  # loaded the model
        "c": {"predictor": "w1", "finished_at": 132.0},
        "d": {"predictor": "w2", "finished_at": 135.0},
        "e": {"predictor": "w1", "finished_at": 135.0},
    }
    assert steady(done) == 3.0  # gaps 2, 3 (w1) and 4 (w2)
    assert steady({"a": {"predictor": "w1", "finished_at": 30.0}}) is None
