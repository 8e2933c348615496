"""Diffuse lighting baked into the vertex colours.

Lighting is static, so Lambertian shading does not depend on the view: computing it once per vertex lets
the renderer draw unlit (pyrender's FLAT mode, several times faster than its lit shader on llvmpipe), and
the mesh colours then carry the same baked light as the images, as in a real scan whose colours come
from photographs.
"""

from __future__ import annotations

import numpy as np


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(N, 3) unit normals: area-weighted mean of the right-hand normals of the adjacent faces."""
    v = vertices[faces]
    face_normals = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])  # length = 2 * area
    normals = np.zeros_like(vertices, dtype=np.float64)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_normals)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.maximum(length, 1e-12)


def bake(
    vertices: np.ndarray,
    faces: np.ndarray,
    albedo: np.ndarray,
    lamps: np.ndarray,
    sun_direction=(0.3, -0.45, -0.84),
    ambient: float = 0.5,
    sun: float = 0.35,
    lamp_power: float = 0.9,
) -> np.ndarray:
    """Lit colours (N, 3) uint8 from albedo (N, 3) uint8, point lamps (L, 3) and a distant sun."""
    normals = vertex_normals(np.asarray(vertices, np.float64), faces)
    direction = -np.asarray(sun_direction, dtype=np.float64)
    direction /= np.linalg.norm(direction)
    light = ambient + sun * np.clip(normals @ direction, 0, None)
    for lamp in np.asarray(lamps, dtype=np.float64).reshape(-1, 3):
        offset = lamp - vertices
        distance = np.linalg.norm(offset, axis=1)
        cosine = np.clip(np.sum(normals * offset, axis=1) / np.maximum(distance, 1e-6), 0, None)
        light += lamp_power * cosine / (1.0 + 0.25 * distance**2)
    light = np.minimum(light, 1.35)
    return np.clip(np.round(albedo.astype(np.float64) * light[:, None]), 0, 255).astype(np.uint8)
