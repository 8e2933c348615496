from __future__ import annotations

import numpy as np
import pytest
import torch

from panst3r_core.inference.keyframes import linspace_keyframes, order_anchors, retrieval_keyframes


def test_linspace_matches_numpy_and_none_means_all():
    assert linspace_keyframes(4, 2) == [0, 3]
    assert linspace_keyframes(4, 3) == [0, 1, 3]
    assert linspace_keyframes(10, 4) == np.linspace(0, 9, 4, dtype=int).tolist()
    assert linspace_keyframes(3, None) == [0, 1, 2]
    assert linspace_keyframes(3, 7) == [0, 1, 2]
    with pytest.raises(ValueError):
        linspace_keyframes(3, 0)


def test_retrieval_picks_one_view_per_cluster():
    # Three tight clusters of views; 3 keyframes must cover all three clusters.
    centers = torch.eye(3, 8)
    feats = torch.cat(
        [centers[c] + 0.01 * torch.randn(4, 8, generator=torch.Generator().manual_seed(c)) for c in range(3)]
    )
    keyframes = retrieval_keyframes(feats, 3, seed=0)
    assert sorted(k // 4 for k in keyframes) == [0, 1, 2]
    assert retrieval_keyframes(feats, 3, seed=0) == keyframes  # seeded


def test_official_ordering_rule():
    sim = np.array(
        [
            [1.0, 0.1, 0.9, 0.0],
            [0.1, 1.0, 0.2, 0.8],
            [0.9, 0.2, 1.0, 0.3],
            [0.0, 0.8, 0.3, 1.0],
        ]
    )
    # Summed similarity to the others: [1.0, 1.1, 1.4, 1.1] -> start at 2, then its best match 0, then
    # the best remaining similarity to {2, 0} is 3 (0.3), then 1.
    assert order_anchors(sim, [0, 1, 2, 3]) == [2, 0, 3, 1]
