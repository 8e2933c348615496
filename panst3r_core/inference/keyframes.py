"""Keyframe selection: evenly spaced (official default) or diverse by retrieval on encoder features."""

from __future__ import annotations

import numpy as np
import torch


def linspace_keyframes(num_views: int, num_keyframes: int | None) -> list[int]:
    """`np.linspace(0, N-1, K, dtype=int)`; None or K >= N -> all views."""
    if num_keyframes is None or num_keyframes >= num_views:
        return list(range(num_views))
    if num_keyframes < 1:
        raise ValueError(f"num_keyframes={num_keyframes} must be at least 1")
    return np.linspace(0, num_views - 1, num_keyframes, dtype=int).tolist()


def similarity_from_features(features: torch.Tensor) -> np.ndarray:
    """features (N, D) (e.g. mean-pooled encoder tokens) -> (N, N) cosine similarity, float64."""
    feats = features.double()
    feats = feats / feats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return (feats @ feats.T).cpu().numpy()


def farthest_point_sampling(distance: np.ndarray, count: int, first: int) -> list[int]:
    """Greedy farthest-point sampling on a (N, N) distance matrix starting at `first`."""
    chosen = [first]
    nearest = distance[first].copy()
    while len(chosen) < count:
        nxt = int(np.argmax(nearest))
        chosen.append(nxt)
        nearest = np.minimum(nearest, distance[nxt])
    return chosen


def order_anchors(similarity: np.ndarray, anchors: list[int]) -> list[int]:
    """Official ordering: start from the anchor with the highest summed similarity to the other anchors,
    then repeatedly append the unused anchor most similar to any already chosen one."""
    sub = similarity[np.ix_(anchors, anchors)].copy()
    np.fill_diagonal(sub, 0)
    order = [int(np.argmax(sub.sum(axis=-1)))]
    sub[:, order[0]] = 0
    while len(order) < len(anchors):
        rows = sub[np.array(order)]
        best = int(np.unravel_index(np.argmax(rows), rows.shape)[1])
        if best in order:  # all remaining similarities are zero: take the first unused anchor
            best = next(i for i in range(len(anchors)) if i not in order)
        order.append(best)
        sub[:, best] = 0
    return [anchors[i] for i in order]


def retrieval_keyframes(features: torch.Tensor, num_keyframes: int | None, seed: int = 0) -> list[int]:
    """Diverse keyframes: farthest-point sampling on 1 - cosine similarity of per-view features (N, D),
    seeded first pick, then the official ordering rule."""
    num_views = features.shape[0]
    if num_keyframes is None or num_keyframes >= num_views:
        num_keyframes = num_views
    similarity = similarity_from_features(features)
    first = int(np.random.default_rng(seed).integers(num_views))
    anchors = farthest_point_sampling(1 - similarity, num_keyframes, first)
    return order_anchors(similarity, anchors)
