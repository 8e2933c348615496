"""The last step of a preprocessing run, after its scene tasks: the store's root facts and its tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from datasets.store.reader import read_scene_attrs
from datasets.store.schema import StoreLayout
from datasets.store.staleness import CurrentVersion
from datasets.store.tables import TableBuilder
from datasets.store.writer import set_categories


def finalize_store(
    store: str | Path,
    cls_sep: int,
    current: CurrentVersion | None = None,
    builder: TableBuilder | None = None,
) -> dict[str, pd.DataFrame]:
    """Record the class vocabulary (from the first committed scene that has one) and `cls_sep` in the root
    attrs, then rebuild the tables (`builder` keeps its per-scene cache across the run). Flow process only:
    workers never edit root attrs. Returns the tables."""
    layout = StoreLayout(Path(store))
    for scene_id in layout.committed_scene_ids():
        categories = read_scene_attrs(layout, scene_id).get("categories")
        if categories:
            set_categories(layout.root, categories, cls_sep=cls_sep)
            break
    return (builder or TableBuilder(layout.root)).write(current)
