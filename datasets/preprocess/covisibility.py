"""Frame pairs from the co-visibility of rendered depth, for scenes without a precomputed pairs file.

Overlap(a -> b): back-project a sample of frame a's valid depth pixels to the world, project them into frame b,
and count those that land inside b, in front of it, and agree with b's own depth there (so occluded points do
not count). The pair score is the smaller of the two directions: both views must see much of each other.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _sample_points(depth: np.ndarray, K: np.ndarray, cam_to_world: np.ndarray, stride: int) -> np.ndarray:
    """World points (M, 3) of every `stride`-th valid pixel of a depth map (metres, 0 = invalid)."""
    rows = np.arange(stride // 2, depth.shape[0], stride)
    cols = np.arange(stride // 2, depth.shape[1], stride)
    z = depth[np.ix_(rows, cols)]
    jj, ii = np.meshgrid(rows, cols, indexing="ij")
    valid = z > 0
    z, u, v = z[valid], ii[valid] + 0.5, jj[valid] + 0.5  # pixel centres, COLMAP convention
    cam = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], axis=1)
    return cam @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]


def _visible_fraction(
    points: np.ndarray, depth: np.ndarray, K: np.ndarray, cam_to_world: np.ndarray, rel_tol: float
) -> float:
    if len(points) == 0:
        return 0.0
    world_to_cam = np.linalg.inv(cam_to_world)
    cam = points @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    z = cam[:, 2]
    in_front = z > 1e-6
    safe_z = np.where(in_front, z, 1.0)
    u = K[0, 0] * cam[:, 0] / safe_z + K[0, 2]
    v = K[1, 1] * cam[:, 1] / safe_z + K[1, 2]
    height, width = depth.shape
    inside = in_front & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    col = np.clip(np.floor(u).astype(np.int64), 0, width - 1)  # COLMAP: pixel i covers [i, i + 1)
    row = np.clip(np.floor(v).astype(np.int64), 0, height - 1)
    seen = depth[row, col]
    consistent = inside & (seen > 0) & (np.abs(seen - z) <= rel_tol * seen)
    return float(consistent.sum()) / len(points)


def overlap_matrix(
    depths: Sequence[np.ndarray],
    intrinsics: Sequence[np.ndarray],
    cam_to_world: Sequence[np.ndarray],
    stride: int = 8,
    rel_tol: float = 0.05,
) -> np.ndarray:
    """(N, N) float64: entry [a, b] = fraction of frame a's valid pixels (sampled every `stride` px) that
    frame b sees at a consistent depth (|z - depth_b| <= rel_tol * depth_b). Diagonal = 1 where a has depth.

    depths: N arrays (H_i, W_i) metres, 0 = invalid (any sequence: read twice each); intrinsics: N (3, 3) COLMAP convention;
    cam_to_world: N (4, 4) OpenCV axes. Frames may differ in size (DSLR and iPhone)."""
    n = len(depths)
    if not (len(intrinsics) == len(cam_to_world) == n):
        raise ValueError("depths, intrinsics and cam_to_world must have one entry per frame")
    # Each depth map is read twice (its sample, then as the target of every other frame's sample) and never
    # held beside the others: `depths` may load them lazily, so that a 150-frame scene needs one map at a
    # time plus the small samples.
    points = [
        _sample_points(depths[i], np.asarray(intrinsics[i]), np.asarray(cam_to_world[i]), stride)
        for i in range(n)
    ]
    matrix = np.zeros((n, n))
    for b in range(n):
        depth_b, K_b, pose_b = depths[b], np.asarray(intrinsics[b]), np.asarray(cam_to_world[b])
        for a in range(n):
            if a == b:
                matrix[a, b] = 1.0 if len(points[a]) else 0.0
            else:
                matrix[a, b] = _visible_fraction(points[a], depth_b, K_b, pose_b, rel_tol)
    return matrix


def symmetric_score(matrix: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Score of pairs (a, b): min(overlap a->b, overlap b->a)."""
    return np.minimum(matrix[a, b], matrix[b, a])


def pairs_from_overlap(matrix: np.ndarray, min_overlap: float) -> np.ndarray:
    """(P, 3) float64 rows (a, b, score) with a < b and score >= min_overlap, sorted by (a, b)."""
    a, b = np.triu_indices(matrix.shape[0], k=1)
    score = symmetric_score(matrix, a, b)
    keep = score >= min_overlap
    return np.stack([a[keep], b[keep], score[keep]], axis=1).astype(np.float64).reshape(-1, 3)
