"""Camera paths of a person scanning a room: walking a loop around the middle of the room at eye height,
looking inward and slightly down at the furniture, with smooth hand-held wobble. Consecutive frames
overlap strongly and every object is seen from several sides.
"""

from __future__ import annotations

import numpy as np

from datasets.synthetic.layout import CELL, Layout


def _smooth(rng: np.random.Generator, n: int, knots: int, amplitude: float) -> np.ndarray:
    """(n,) smooth random signal: values at `knots` control points, cosine-interpolated."""
    values = rng.uniform(-amplitude, amplitude, knots + 1)
    t = np.linspace(0, knots, n)
    i = np.minimum(t.astype(int), knots - 1)
    w = (1 - np.cos(np.pi * (t - i))) / 2
    return values[i] * (1 - w) + values[i + 1] * w


def look_at(position: np.ndarray, target: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """(4, 4) camera->world in OpenCV axes (x right, y down, z forward), world z up."""
    forward = target - position
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    c, s = np.cos(roll), np.sin(roll)
    right, down = c * right + s * down, -s * right + c * down
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, down, forward, position
    return pose


def _free_position(layout: Layout, xy: np.ndarray, height: float) -> np.ndarray:
    """Move a camera position radially until it is not inside furniture taller than the camera's chin."""
    room = layout.room
    offset = xy - room.centre
    for scale in (1.0, 0.92, 1.08, 0.85, 1.15, 0.75, 0.65, 0.55):
        candidate = room.centre + offset * scale
        candidate = np.clip(candidate, 0.4, [room.size_x - 0.4, room.size_y - 0.4])
        i = np.clip((candidate / CELL).astype(int), 0, np.array(layout.heights.shape) - 1)
        window = layout.heights[max(i[0] - 4, 0) : i[0] + 5, max(i[1] - 4, 0) : i[1] + 5]
        if window.max(initial=0.0) < height - 0.35:
            return candidate
    return candidate


def scan_path(
    layout: Layout,
    rng: np.random.Generator,
    num_frames: int,
    height: tuple[float, float] = (1.35, 1.7),
    coverage: tuple[float, float] = (0.8, 1.0),
) -> list[np.ndarray]:
    """Camera->world poses (OpenCV axes, room frame) of `num_frames` views along a loop in the room."""
    room = layout.room
    a, b = room.loop_axes
    start = rng.uniform(0, 2 * np.pi)
    direction = 1.0 if rng.random() < 0.5 else -1.0
    span = 2 * np.pi * rng.uniform(*coverage)
    knots = max(2, num_frames // 4)
    phi = start + direction * span * np.arange(num_frames) / max(num_frames, 1)
    radial = 1.0 + _smooth(rng, num_frames, knots, 0.1)
    heights = rng.uniform(*height) + _smooth(rng, num_frames, knots, 0.08)
    target_offset = np.stack(
        [_smooth(rng, num_frames, knots, 0.45 * a), _smooth(rng, num_frames, knots, 0.45 * b)], 1
    )
    target_z = 0.7 + _smooth(rng, num_frames, knots, 0.3)
    roll = _smooth(rng, num_frames, knots, np.deg2rad(4))
    poses = []
    for k in range(num_frames):
        xy = room.centre + radial[k] * np.array([a * np.cos(phi[k]), b * np.sin(phi[k])])
        xy = _free_position(layout, xy, heights[k])
        target = np.append(room.centre + target_offset[k], target_z[k])
        poses.append(look_at(np.append(xy, heights[k]), target, roll[k]))
    return poses
