"""Co-visibility of views from rendered depth: back-project a sparse grid of pixels of view a, transform the
points into view b, project them with b's lens and count those that land on the same surface (depth test).
The same machinery builds the sparse COLMAP point tracks (points3D.txt / POINTS2D lines).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datasets.synthetic.lens import Lens


@dataclass
class View:
    """One rendered view: lens, cam_to_world (4, 4) OpenCV axes, depth (H, W) float32 metres, 0 = none."""

    lens: Lens
    cam_to_world: np.ndarray
    depth: np.ndarray


def _depth_agrees(z: np.ndarray, surface: np.ndarray) -> np.ndarray:
    return (surface > 0) & (np.abs(z - surface) < 0.03 + 0.02 * z)


def visibility(points_world: np.ndarray, view: View) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) world points -> (N, 2) COLMAP-convention pixels in `view` and (N,) bool visible mask."""
    world_to_cam = np.linalg.inv(view.cam_to_world)
    points_cam = points_world @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    uv, inside = view.lens.project(points_cam)
    visible = np.zeros(len(points_world), dtype=bool)
    if inside.any():
        col = np.clip(uv[inside, 0].astype(int), 0, view.depth.shape[1] - 1)
        row = np.clip(uv[inside, 1].astype(int), 0, view.depth.shape[0] - 1)
        visible[inside] = _depth_agrees(points_cam[inside, 2], view.depth[row, col])
    return uv, visible


def sample_points(view: View, step: int) -> tuple[np.ndarray, np.ndarray]:
    """World points and COLMAP-convention pixels of every `step`-th pixel with valid depth."""
    x, y, uv = view.lens.pixel_grid_rays(step)  # pixels 0, step, 2 * step, ... in both directions
    depth = view.depth[::step, ::step]
    valid = depth > 0
    points_cam = np.stack([x[valid] * depth[valid], y[valid] * depth[valid], depth[valid]], 1)
    points_world = points_cam @ view.cam_to_world[:3, :3].T + view.cam_to_world[:3, 3]
    return points_world, uv[valid]


def overlap_matrix(views: list[View], step: int = 0) -> np.ndarray:
    """(V, V) fraction of view a's sampled surface points that view b also sees (diagonal = 1).
    step: pixel stride of the samples; 0 = about 80 samples across the image width."""
    count = len(views)
    overlap = np.eye(count)
    samples = [sample_points(view, step or max(2, view.lens.width // 80))[0] for view in views]
    for a in range(count):
        if len(samples[a]) == 0:
            continue
        for b in range(count):
            if a != b:
                overlap[a, b] = visibility(samples[a], views[b])[1].mean()
    return overlap


def select_pairs(overlap: np.ndarray, min_overlap: float = 0.3) -> np.ndarray:
    """(P, 3) float64 rows (i, j, score) with i < j and score = min(overlap[i, j], overlap[j, i]) >= min_overlap.
    Every view keeps at least its best partner so no frame is left without a pair."""
    score = np.minimum(overlap, overlap.T)
    count = len(score)
    keep = set()
    for i in range(count):
        for j in range(i + 1, count):
            if score[i, j] >= min_overlap:
                keep.add((i, j))
    for i in range(count):
        if count > 1 and not any(i in pair for pair in keep):
            others = [(score[i, j], j) for j in range(count) if j != i]
            best = max(others)[1]
            keep.add((min(i, best), max(i, best)))
    rows = [(i, j, round(float(score[i, j]), 4)) for i, j in sorted(keep)]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


@dataclass
class Track:
    xyz: np.ndarray  # (3,)
    observations: list[tuple[int, np.ndarray]]  # (view index, (2,) COLMAP pixel)
    source: int = 0  # the view the point was sampled in


def point_tracks(views: list[View], rng: np.random.Generator, per_view: int = 30) -> list[Track]:
    """Sparse 3-D points seen by at least two views, with their pixel observations in every view."""
    tracks: list[Track] = []
    for index, view in enumerate(views):
        points, _ = sample_points(view, max(2, view.lens.width // 40))
        if len(points) == 0:
            continue
        chosen = points[rng.choice(len(points), size=min(per_view, len(points)), replace=False)]
        observed = [visibility(chosen, other) for other in views]
        for k, xyz in enumerate(chosen):
            seen = [(v, observed[v][0][k]) for v in range(len(views)) if observed[v][1][k] or v == index]
            if len(seen) >= 2:
                tracks.append(Track(xyz, seen, index))
    return tracks
