"""Procedural per-vertex colour patterns.

The mesh is dense (a few centimetres between vertices, like `mesh_aligned_0.05.ply`), so patterns are
evaluated at the vertices in the object's own frame: the same object looks the same from every view and
the rendered images agree with the mesh colours. Patterns are coarse enough for the vertex spacing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

PATTERNS = ("solid", "stripes", "checker", "wood", "blotches", "panels")


def _mix(a: np.ndarray, b: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return a[None, :] * (1 - weight[:, None]) + b[None, :] * weight[:, None]


def _smooth_noise(local: np.ndarray, rng: np.random.Generator, scale: float, waves: int = 6) -> np.ndarray:
    """Sum of random plane waves: smooth values in [0, 1] with features of about `scale` metres."""
    directions = rng.normal(size=(waves, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    phases = rng.uniform(0, 2 * np.pi, waves)
    value = np.sin(local @ directions.T * (2 * np.pi / scale) + phases).sum(1)
    return 0.5 + 0.5 * value / np.sqrt(waves * 0.5) / 2.0


def paint(
    pattern: str,
    local: np.ndarray,
    base: np.ndarray,
    accent: np.ndarray,
    rng: np.random.Generator,
    scale: float = 0.2,
) -> np.ndarray:
    """Colour vertices given in object coordinates (N, 3) -> (N, 3) uint8.

    base, accent: RGB in [0, 255]; scale: pattern period in metres."""
    painter: Callable[..., np.ndarray] = _PAINTERS[pattern]
    colors = painter(local, np.asarray(base, float), np.asarray(accent, float), rng, scale)
    grain = rng.normal(0, 4.0, size=(len(local), 1))  # sensor-like speckle so flat areas still have texture
    return np.clip(np.round(colors + grain), 0, 255).astype(np.uint8)


def _solid(local, base, accent, rng, scale):
    shade = 0.92 + 0.16 * _smooth_noise(local, rng, scale * 4)
    return base[None, :] * shade[:, None]


def _stripes(local, base, accent, rng, scale):
    axis = rng.integers(0, 3)
    phase = rng.uniform(0, scale)
    weight = ((local[:, axis] + phase) // (scale / 2) % 2).astype(float)
    return _mix(base, accent, weight)


def _checker(local, base, accent, rng, scale):
    cells = np.floor((local + rng.uniform(0, scale, 3)) / scale).astype(int).sum(1) % 2
    return _mix(base, accent, cells.astype(float))


def _wood(local, base, accent, rng, scale):
    along, across = (0, 1) if rng.random() < 0.5 else (1, 0)
    plank = np.floor(local[:, across] / scale)
    plank_shade = 0.85 + 0.3 * ((np.sin(plank * 12.9898 + rng.uniform(0, 6.28)) * 43758.5453) % 1.0)
    grain = 0.5 + 0.5 * np.sin(local[:, along] * 2 * np.pi / (scale * 2.5) + plank * 1.7)
    return _mix(base, accent, 0.35 * grain) * plank_shade[:, None]


def _blotches(local, base, accent, rng, scale):
    weight = np.clip((_smooth_noise(local, rng, scale * 2) - 0.35) * 3.0, 0, 1)
    return _mix(base, accent, weight)


def _panels(local, base, accent, rng, scale):
    # Darker seams on a coarse grid, as on cabinet doors, radiators or tiles.
    seam = np.zeros(len(local), dtype=bool)
    for axis in range(3):
        offset = (local[:, axis] % scale) / scale
        seam |= (offset < 0.12) | (offset > 0.88)
    return np.where(seam[:, None], accent[None, :], base[None, :]) * (0.95 + 0.1 * rng.random())


_PAINTERS = {
    "solid": _solid,
    "stripes": _stripes,
    "checker": _checker,
    "wood": _wood,
    "blotches": _blotches,
    "panels": _panels,
}


def jitter_color(rgb, rng: np.random.Generator, amount: float = 0.12) -> np.ndarray:
    """Vary a palette colour in brightness and slightly per channel (same class, different instance)."""
    rgb = np.asarray(rgb, dtype=float)
    brightness = 1.0 + rng.uniform(-amount, amount)
    channels = 1.0 + rng.uniform(-amount / 3, amount / 3, size=3)
    return np.clip(rgb * brightness * channels, 0, 255)
