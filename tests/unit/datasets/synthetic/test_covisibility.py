"""Co-visibility from depth and the pair selection rules."""

from __future__ import annotations

import numpy as np

from datasets.synthetic.covisibility import View, overlap_matrix, select_pairs, visibility
from datasets.synthetic.lens import Lens
from datasets.synthetic.trajectory import look_at

LENS = Lens("OPENCV_FISHEYE", 160, 120, 90.0, 90.0, 80.0, 60.0, (0.0, 0.0, 0.0, 0.0))


def _wall_view(position, target) -> View:
    """A view of the plane y = 2 (a wall), with exact depth computed analytically."""
    pose = look_at(np.asarray(position, float), np.asarray(target, float))
    x, y, _ = LENS.pixel_grid_rays(1)
    rays_world = np.stack([x, y, np.ones_like(x)], -1) @ pose[:3, :3].T
    t = (2.0 - pose[1, 3]) / rays_world[..., 1]
    depth = np.where(t > 0, t, 0.0).astype(np.float32)  # z-depth = t because the camera ray has z = 1
    return View(LENS, pose, depth)


def test_views_of_one_wall_overlap_and_opposite_views_do_not():
    a = _wall_view([0, 0, 1], [0, 2, 1])
    b = _wall_view([0.2, 0, 1], [0.2, 2, 1])
    c = _wall_view([0, 0, 1], [0, -2, 1])  # looks away from the wall: sees nothing
    c.depth[:] = 0
    overlap = overlap_matrix([a, b, c], step=4)
    assert overlap[0, 0] == 1.0
    assert overlap[0, 1] > 0.8 and overlap[1, 0] > 0.8
    assert overlap[0, 2] == 0.0 and overlap[2, 0] == 0.0


def test_occluded_points_are_not_visible():
    a = _wall_view([0, 0, 1], [0, 2, 1])
    points = np.array([[0.0, 2.0, 1.0], [0.0, 3.0, 1.0]])  # on the wall, and behind it
    _, visible = visibility(points, a)
    assert visible.tolist() == [True, False]


def test_select_pairs_keeps_mutual_overlap_and_gives_every_view_a_partner():
    overlap = np.array(
        [[1.0, 0.9, 0.2, 0.0], [0.5, 1.0, 0.1, 0.0], [0.25, 0.1, 1.0, 0.05], [0.0, 0.0, 0.1, 1.0]]
    )
    pairs = select_pairs(overlap, min_overlap=0.3)
    assert pairs.dtype == np.float64 and pairs.shape[1] == 3
    as_list = [tuple(row) for row in pairs.tolist()]
    assert (0.0, 1.0, 0.5) in as_list  # score = min of both directions
    assert (0.0, 2.0, 0.2) in as_list  # view 2 keeps its best partner
    assert (2.0, 3.0, 0.05) in as_list  # view 3 keeps its best partner
    assert np.all(pairs[:, 0] < pairs[:, 1])
