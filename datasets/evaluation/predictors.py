"""The models a sweep evaluates: loaded once per process, and named by their architecture."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from panst3r_core.predictor import Predictor

_PREDICTORS: dict[tuple[Any, ...], Predictor] = {}
_PREDICTORS_LOCK = threading.Lock()


def load_predictor(
    checkpoint: str | Path, device: str, revision: str | None = None, **options: Any
) -> Predictor:
    """One Predictor per (checkpoint, device, options) in this process: a sweep loads each checkpoint once.
    Only the last one stays in memory (a sweep goes checkpoint by checkpoint). `options` are Predictor's.
    `revision` (e.g. the checkpoint's content hash) tells apart two contents of one path: a long-lived
    process, such as a worker of an existing Dask cluster, then reloads a checkpoint rewritten in place."""
    key = (str(Path(checkpoint).resolve()), revision, device, *sorted(options.items()))
    with _PREDICTORS_LOCK:
        if key not in _PREDICTORS:
            _PREDICTORS.clear()
            _PREDICTORS[key] = Predictor(weights=checkpoint, device=device, **options)
        return _PREDICTORS[key]


def model_variant(predictor: Predictor) -> str:
    """The registered variant recorded with the checkpoint, else a name from the model's architecture."""
    variant = predictor.metadata.get("variant")
    if variant:
        return str(variant)
    config = getattr(predictor.model, "config", None)
    if config is None:
        return "unknown"
    head = "v2" if config.panoptic.loftup is not None else "v1"
    return f"panst3r_{head}_{config.encoder.embed_dim}"
