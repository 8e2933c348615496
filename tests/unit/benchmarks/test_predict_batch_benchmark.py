"""The batch prediction benchmark's own arithmetic: the steady rate leaves out each worker's first scene
(the one that also loaded the model)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "predict_batch.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("predict_batch_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_steady_seconds_leave_out_each_workers_first_scene():
    steady = _load_script().steady_seconds_per_scene
    done = {
        "a": {"predictor": "w1", "seconds": 30.0},  # loads the model
        "b": {"predictor": "w2", "seconds": 31.0},  # loads the model
        "c": {"predictor": "w1", "seconds": 2.0},
        "d": {"predictor": "w2", "seconds": 4.0},
        "e": {"predictor": "w1", "seconds": 3.0},
    }
    assert steady(done) == 3.0
    assert steady({"a": {"predictor": "w1", "seconds": 30.0}}) is None
