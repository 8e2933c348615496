"""Co-visibility of rendered depth: analytic planes seen from shifted cameras."""

from __future__ import annotations

import numpy as np
import pytest

from datasets.preprocess.covisibility import overlap_matrix, pairs_from_overlap, symmetric_score

W, H = 80, 60
K = np.array([[60.0, 0.0, 40.0], [0.0, 60.0, 30.0], [0.0, 0.0, 1.0]])


def plane_depth(distance: float, width: int = W, height: int = H) -> np.ndarray:
    return np.full((height, width), distance)


def shifted(x: float) -> np.ndarray:
    pose = np.eye(4)
    pose[0, 3] = x
    return pose


def test_sideways_shift_gives_the_analytic_overlap():
    # A wall at 2 m: the view spans 2 * 40 / 60 * 2 = 2.667 m. Shifting by 1 m leaves 1 - 1/2.667 visible.
    d = 2.0
    matrix = overlap_matrix([plane_depth(d), plane_depth(d)], [K, K], [shifted(0.0), shifted(1.0)], stride=2)
    expected = 1 - 1.0 / (2 * 40 / 60 * d)
    assert matrix[0, 1] == pytest.approx(expected, abs=0.03)
    assert matrix[1, 0] == pytest.approx(expected, abs=0.03)
    assert matrix[0, 0] == 1.0


def test_occluded_points_do_not_count():
    # Frame b sees a nearer surface in front of a's wall: a's points project inside b but disagree in depth.
    matrix = overlap_matrix(
        [plane_depth(3.0), plane_depth(1.0)], [K, K], [shifted(0.0), shifted(0.0)], stride=2
    )
    assert matrix[0, 1] == 0.0
    # b's nearer points are not on a's wall either.
    assert matrix[1, 0] == 0.0


def test_invalid_depth_and_cameras_facing_away():
    behind = np.eye(4)
    behind[:3, :3] = np.diag([-1.0, 1.0, -1.0])  # turned around
    empty = np.zeros((H, W))
    matrix = overlap_matrix(
        [plane_depth(2.0), plane_depth(2.0), empty], [K, K, K], [shifted(0), behind, shifted(0)]
    )
    assert matrix[0, 1] == 0.0 and matrix[1, 0] == 0.0
    assert matrix[2, 0] == 0.0 and matrix[2, 2] == 0.0
    # Pixels of an invalid (zero) depth in b never confirm a's points.
    assert matrix[0, 2] == 0.0


def test_pairs_use_the_smaller_direction_and_the_threshold():
    matrix = np.array([[1.0, 0.8, 0.1], [0.4, 1.0, 0.6], [0.9, 0.7, 1.0]])
    np.testing.assert_allclose(symmetric_score(matrix, np.array([0, 1]), np.array([1, 2])), [0.4, 0.6])
    pairs = pairs_from_overlap(matrix, 0.4)
    np.testing.assert_allclose(pairs, [[0, 1, 0.4], [1, 2, 0.6]])
    assert pairs_from_overlap(matrix, 0.95).shape == (0, 3)


def test_frames_of_different_sizes():
    K_small = K * [[0.5], [0.5], [1]]
    matrix = overlap_matrix(
        [plane_depth(2.0), plane_depth(2.0, W // 2, H // 2)], [K, K_small], [shifted(0), shifted(0)], stride=2
    )
    assert matrix[0, 1] == pytest.approx(1.0, abs=0.02)
    assert matrix[1, 0] == pytest.approx(1.0, abs=0.02)


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="one entry per frame"):
        overlap_matrix([plane_depth(1.0)], [K, K], [np.eye(4)])
