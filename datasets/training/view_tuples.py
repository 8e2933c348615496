"""View tuples grown from overlapping pairs, as the official MUSt3R sampler (`select_tuple_from_pairs`) does.

A sample starts from one pair (i1, i2). Candidates are the pair-neighbours of the selected views; a random
candidate is added until `num_views` views are selected. Only while the selection is still within the
memory views (size <= memory_num_views) does a new view contribute its own neighbours, so the memory views
spread over the scene while the remaining views stay close to them. When the candidates run out, selected
views are repeated to fill the tuple.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NeighbourGraph:
    """Undirected pair graph over global image ids in compressed sparse row form (cheap to pickle into
    DataLoader workers): the neighbours of image i are `neighbours[offsets[i]:offsets[i + 1]]`, sorted."""

    offsets: np.ndarray  # (num_images + 1,) int64
    neighbours: np.ndarray  # (2 * num_edges,) int64

    @classmethod
    def from_pairs(cls, pairs: np.ndarray, num_images: int) -> NeighbourGraph:
        """pairs: (P, 2) global image ids; self-pairs are ignored, repeated pairs count once."""
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
        if pairs.size and (pairs.min() < 0 or pairs.max() >= num_images):
            raise ValueError(f"pairs refer to image ids outside [0, {num_images})")
        both = np.concatenate([pairs, pairs[:, ::-1]])
        both = np.unique(both, axis=0)  # sorted by (source, target): rows come out grouped and ordered
        counts = np.bincount(both[:, 0], minlength=num_images)
        offsets = np.zeros(num_images + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return cls(offsets=offsets, neighbours=both[:, 1].copy())

    @property
    def num_images(self) -> int:
        return len(self.offsets) - 1

    def of(self, image: int) -> np.ndarray:
        return self.neighbours[self.offsets[image] : self.offsets[image + 1]]


def select_view_tuple(
    graph: NeighbourGraph,
    first: int,
    second: int,
    num_views: int,
    memory_num_views: int,
    rng: np.random.Generator,
) -> tuple[list[int], int]:
    """Global image ids of one sample, starting with the pair (first, second).

    Returns (views, num_distinct): `views` has exactly `num_views` ids; the first `num_distinct` are
    distinct and each of them after the pair overlaps an earlier one; the rest repeat earlier views
    (only when the candidates ran out).
    """
    if num_views < 1:
        raise ValueError(f"num_views must be >= 1, got {num_views}")
    selected = [first] if first == second else [first, second]
    selected = selected[:num_views]
    chosen = set(selected)
    candidates = {int(n) for image in selected for n in graph.of(image)} - chosen
    while len(selected) < num_views and candidates:
        pick = int(rng.choice(sorted(candidates)))
        selected.append(pick)
        chosen.add(pick)
        candidates.discard(pick)
        if len(selected) <= memory_num_views:
            candidates.update(int(n) for n in graph.of(pick) if int(n) not in chosen)
    num_distinct = len(selected)
    while len(selected) < num_views:
        selected.append(int(selected[rng.integers(0, num_distinct)]))
    return selected, num_distinct
