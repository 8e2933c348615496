"""The sample index of one or several stores: every training pair, with global image ids and the
neighbour graph the view tuples grow in. Built from the stores' Parquet pairs tables only (no pixel reads).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from datasets.store.tables import read_table
from datasets.training.view_tuples import NeighbourGraph

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairIndex:
    """Global image id i is frame `frame_index[i]` of scene `scenes[frame_scene[i]]` = (store, scene_id).

    pairs: (P, 2) int64 global ids; a sample index is a row of `pairs` (the official `__len__` = #pairs)."""

    scenes: list[tuple[int, str]]
    frame_scene: np.ndarray
    frame_index: np.ndarray
    pairs: np.ndarray
    graph: NeighbourGraph

    def __len__(self) -> int:
        return len(self.pairs)

    def image(self, image_id: int) -> tuple[int, str, int]:
        """(store index, scene id, frame index in the scene) of a global image id."""
        store, scene_id = self.scenes[int(self.frame_scene[image_id])]
        return store, scene_id, int(self.frame_index[image_id])


def _select_split(pairs: pd.DataFrame, split: str | None, store: Path) -> pd.DataFrame:
    if split is None:
        return pairs
    labels = set(pairs["split"].astype(str))
    if labels <= {""}:
        log.info("store %s has no split labels; using all of its scenes for split %r", store, split)
        return pairs
    return pairs[pairs["split"].astype(str) == split]


def build_pair_index(stores: list[Path], split: str | None = None) -> PairIndex:
    """Pairs of every store (restricted to scenes of `split`, unless a store has no split labels at all)."""
    scenes: list[tuple[int, str]] = []
    frame_scene, frame_index, pairs = [], [], []
    next_image = 0
    for store_number, store in enumerate(stores):
        table = _select_split(
            read_table(store, "pairs")[["scene_id", "frame_a", "frame_b", "split"]], split, store
        )
        for scene_id, rows in table.groupby("scene_id", sort=True):
            a = rows["frame_a"].to_numpy(np.int64)
            b = rows["frame_b"].to_numpy(np.int64)
            num_frames = int(max(a.max(), b.max())) + 1
            scene_number = len(scenes)
            scenes.append((store_number, str(scene_id)))
            frame_scene.append(np.full(num_frames, scene_number, dtype=np.int32))
            frame_index.append(np.arange(num_frames, dtype=np.int32))
            pairs.append(np.stack([a, b], axis=1) + next_image)
            next_image += num_frames
    if not pairs:
        where = ", ".join(str(s) for s in stores)
        raise ValueError(
            f"no training pairs in {where}"
            + (f" for split {split!r}" if split else "")
            + "; check `panst3r status --store` (scenes done?) or choose another data.split"
        )
    all_pairs = np.concatenate(pairs)
    return PairIndex(
        scenes=scenes,
        frame_scene=np.concatenate(frame_scene),
        frame_index=np.concatenate(frame_index),
        pairs=all_pairs,
        graph=NeighbourGraph.from_pairs(all_pairs, next_image),
    )
