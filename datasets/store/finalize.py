"""The last step of a preprocessing run, after its scene tasks: the store's root facts and its tables."""

from __future__ import annotations

import pandas as pd

from datasets.store.backend import StoreRef, backend_for
from datasets.store.staleness import CurrentVersion
from datasets.store.tables import TableBuilder
from datasets.store.writer import set_categories


def finalize_store(
    store: StoreRef,
    cls_sep: int,
    current: CurrentVersion | None = None,
    builder: TableBuilder | None = None,
) -> dict[str, pd.DataFrame]:
    """Record the class vocabulary (from the first committed scene that has one) and `cls_sep` in the root
    attrs, then rebuild the tables (`builder` keeps its per-scene cache across the run). Flow process only:
    workers never edit root attrs. Returns the tables."""
    backend = backend_for(store)
    backend.refresh()
    for scene_id in backend.committed_scene_ids():
        categories = backend.scene_attrs(scene_id).get("categories")
        if categories:
            set_categories(backend, categories, cls_sep=cls_sep)
            break
    return (builder or TableBuilder(store)).write(current)
