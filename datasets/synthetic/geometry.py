"""Triangle-mesh primitives and the scene mesh builder of the synthetic generator.

Conventions (they matter to the official renderer, which culls back faces):
- every triangle (a, b, c) is wound so that its right-hand normal (b - a) x (c - a) points to the side
  the cameras see: outward for objects, into the room for walls, floor and ceiling;
- every object is its own vertex set, so the three vertices of a face always carry one object id;
- world frame: metres, z up, the floor at z = 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Part:
    """A piece of surface: vertices (N, 3) float64 in world coordinates, faces (F, 3) int64 local indices,
    and `local` (N, 3): the same points in the owning object's frame (texture coordinates)."""

    vertices: np.ndarray
    faces: np.ndarray
    local: np.ndarray


def grid(origin, u_axis, v_axis, resolution: float, inward: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A planar rectangle origin + s*u + t*v (s, t in [0, 1]) meshed as a regular grid with cells no larger
    than `resolution`. The face normal is u x v (or its opposite when `inward`).

    Returns vertices (N, 3) and faces (F, 3)."""
    origin, u_axis, v_axis = (np.asarray(a, dtype=np.float64) for a in (origin, u_axis, v_axis))
    nu = max(1, int(np.ceil(np.linalg.norm(u_axis) / resolution)))
    nv = max(1, int(np.ceil(np.linalg.norm(v_axis) / resolution)))
    s, t = np.meshgrid(np.linspace(0, 1, nu + 1), np.linspace(0, 1, nv + 1), indexing="ij")
    vertices = origin + s.reshape(-1, 1) * u_axis + t.reshape(-1, 1) * v_axis
    index = np.arange((nu + 1) * (nv + 1)).reshape(nu + 1, nv + 1)
    a, b = index[:-1, :-1].ravel(), index[1:, :-1].ravel()
    c, d = index[1:, 1:].ravel(), index[:-1, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    if inward:
        faces = faces[:, ::-1]
    return vertices, faces


def box(size, resolution: float, inward: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned box [0, sx] x [0, sy] x [0, sz]; normals outward (or inward for a room shell)."""
    sx, sy, sz = size
    sides = [
        ((0, 0, 0), (0, sy, 0), (sx, 0, 0)),  # bottom, normal -z
        ((0, 0, sz), (sx, 0, 0), (0, sy, 0)),  # top, normal +z
        ((0, 0, 0), (sx, 0, 0), (0, 0, sz)),  # front y=0, normal -y
        ((0, sy, 0), (0, 0, sz), (sx, 0, 0)),  # back y=sy, normal +y
        ((0, 0, 0), (0, 0, sz), (0, sy, 0)),  # left x=0, normal -x
        ((sx, 0, 0), (0, sy, 0), (0, 0, sz)),  # right x=sx, normal +x
    ]
    return _merge([grid(o, u, v, resolution, inward) for o, u, v in sides])


def frustum(radius_bottom: float, radius_top: float, height: float, resolution: float, caps=(True, True)):
    """Closed (optionally open-ended) cone frustum around the z axis from z=0 to z=height, normals outward."""
    circumference = 2 * np.pi * max(radius_bottom, radius_top)
    segments = int(np.clip(np.ceil(circumference / resolution), 12, 64))
    rings = max(1, int(np.ceil(height / resolution)))
    angle = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    z = np.linspace(0, height, rings + 1)
    radius = radius_bottom + (radius_top - radius_bottom) * z / height
    vertices = np.stack(
        [
            np.outer(radius, np.cos(angle)),
            np.outer(radius, np.sin(angle)),
            np.repeat(z[:, None], segments, 1),
        ],
        axis=-1,
    ).reshape(-1, 3)
    index = np.arange((rings + 1) * segments).reshape(rings + 1, segments)
    nxt = np.roll(index, -1, axis=1)
    a, b, c, d = index[:-1].ravel(), nxt[:-1].ravel(), nxt[1:].ravel(), index[1:].ravel()
    parts = [(vertices, np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)]))]
    for enabled, z_cap, r_cap, up in (
        (caps[0], 0.0, radius_bottom, False),
        (caps[1], height, radius_top, True),
    ):
        if enabled and r_cap > 0:
            parts.append(_disc(r_cap, z_cap, segments, up))
    return _merge(parts)


def _disc(radius: float, z: float, segments: int, up: bool):
    angle = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    rim = np.stack([radius * np.cos(angle), radius * np.sin(angle), np.full(segments, z)], 1)
    vertices = np.vstack([[0.0, 0.0, z], rim])
    i = np.arange(segments) + 1
    faces = np.stack([np.zeros(segments, int), i, np.roll(i, -1)], 1)  # counter-clockwise from above: +z
    return vertices, faces if up else faces[:, ::-1]


def ellipsoid(radii, resolution: float):
    """Ellipsoid centred at the origin with semi-axes `radii`, normals outward."""
    rx, ry, rz = radii
    segments = int(np.clip(np.ceil(2 * np.pi * max(rx, ry) / resolution), 12, 48))
    rings = int(np.clip(np.ceil(np.pi * rz / resolution), 6, 24))
    polar = np.linspace(0, np.pi, rings + 1)[1:-1]
    angle = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    body = np.stack(
        [
            rx * np.outer(np.sin(polar), np.cos(angle)),
            ry * np.outer(np.sin(polar), np.sin(angle)),
            rz * np.repeat(np.cos(polar)[:, None], segments, 1),
        ],
        -1,
    ).reshape(-1, 3)
    vertices = np.vstack([body, [[0, 0, rz], [0, 0, -rz]]])
    top, bottom = len(body), len(body) + 1
    index = np.arange(len(body)).reshape(len(polar), segments)
    nxt = np.roll(index, -1, axis=1)
    # rows go from the north pole downwards, so (a, d, c) and (a, c, b) face outward
    a, b, c, d = index[:-1].ravel(), nxt[:-1].ravel(), nxt[1:].ravel(), index[1:].ravel()
    faces = [np.stack([a, d, c], 1), np.stack([a, c, b], 1)]
    faces.append(np.stack([np.full(segments, top), index[0], nxt[0]], 1))
    faces.append(np.stack([np.full(segments, bottom), nxt[-1], index[-1]], 1))
    return vertices, np.concatenate(faces)


def _merge(parts) -> tuple[np.ndarray, np.ndarray]:
    vertices, faces, offset = [], [], 0
    for v, f in parts:
        vertices.append(np.asarray(v, dtype=np.float64))
        faces.append(np.asarray(f, dtype=np.int64) + offset)
        offset += len(v)
    return np.concatenate(vertices), np.concatenate(faces)


def rotation_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass
class ObjectMesh:
    """One annotated object (one segGroup): its parts and colours, and the frame it was built in."""

    label: str  # raw label written to segments_anno.json
    class_name: str  # benchmark class the label maps to (for bookkeeping; the CSV decides)
    position: np.ndarray  # (3,) world position of the object frame origin
    yaw: float  # rotation of the object frame about z
    vertices: np.ndarray  # (N, 3) world
    faces: np.ndarray  # (F, 3) local indices
    colors: np.ndarray  # (N, 3) uint8


@dataclass
class SceneMesh:
    """All objects of a scene concatenated into one mesh; `vertex_ranges[k]` are object k's vertices."""

    vertices: np.ndarray  # (N, 3) float32
    colors: np.ndarray  # (N, 3) uint8
    faces: np.ndarray  # (F, 3) int64
    objects: list[ObjectMesh] = field(default_factory=list)
    vertex_ranges: list[tuple[int, int]] = field(default_factory=list)

    @property
    def vertex_object(self) -> np.ndarray:
        """(N,) int64 object index of every vertex."""
        out = np.empty(len(self.vertices), dtype=np.int64)
        for k, (start, end) in enumerate(self.vertex_ranges):
            out[start:end] = k
        return out


def combine(objects: list[ObjectMesh]) -> SceneMesh:
    vertices, colors, faces, ranges, offset = [], [], [], [], 0
    for obj in objects:
        vertices.append(obj.vertices)
        colors.append(obj.colors)
        faces.append(obj.faces + offset)
        ranges.append((offset, offset + len(obj.vertices)))
        offset += len(obj.vertices)
    return SceneMesh(
        vertices=np.concatenate(vertices).astype(np.float32),
        colors=np.concatenate(colors).astype(np.uint8),
        faces=np.concatenate(faces).astype(np.int64),
        objects=list(objects),
        vertex_ranges=ranges,
    )


def oriented_box(obj: ObjectMesh) -> dict:
    """ScanNet-style oriented bounding box of an object: centroid, axesLengths and normalizedAxes (row-major
    3x3, rows = box axes), aligned with the object's yaw."""
    rotation = rotation_z(obj.yaw)
    local = (obj.vertices - obj.position) @ rotation
    low, high = local.min(0), local.max(0)
    centre = obj.position + rotation @ ((low + high) / 2)
    return {
        "centroid": [round(float(c), 6) for c in centre],
        "axesLengths": [round(float(s), 6) for s in (high - low)],
        "normalizedAxes": [round(float(a), 6) for a in rotation.T.ravel()],
    }


def subdivide(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray):
    """One midpoint subdivision: every triangle becomes four, with one new vertex per edge shared by the
    faces on both sides (no cracks). Winding is kept, and so are the surface and the object's look: new
    vertices lie on the old faces and take the mean colour of their edge's ends.

    vertices (N, 3), faces (F, 3), colors (N, 3) uint8 -> vertices (N + E, 3), faces (4F, 3), colors."""
    faces = np.asarray(faces, dtype=np.int64)
    a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
    edges = np.concatenate([np.stack([a, b], 1), np.stack([b, c], 1), np.stack([c, a], 1)])
    unique, inverse = np.unique(np.sort(edges, axis=1), axis=0, return_inverse=True)
    mid = len(vertices) + inverse.reshape(3, -1)  # new vertex of edge ab, bc, ca of every face
    ab, bc, ca = mid[0], mid[1], mid[2]
    new_vertices = np.concatenate([vertices, (vertices[unique[:, 0]] + vertices[unique[:, 1]]) / 2])
    mean = (colors[unique[:, 0]].astype(np.uint16) + colors[unique[:, 1]]) // 2
    new_colors = np.concatenate([colors, mean.astype(np.uint8)])
    new_faces = np.concatenate(
        [
            np.stack([a, ab, ca], 1),
            np.stack([ab, b, bc], 1),
            np.stack([ca, bc, c], 1),
            np.stack([ab, bc, ca], 1),
        ]
    )
    return new_vertices, new_faces, new_colors


def densify(objects: list[ObjectMesh], min_faces: int) -> None:
    """Subdivide objects in place until all of them together have at least `min_faces` faces, always the
    object with the coarsest faces (largest mean face area) next, so density evens out over the scene.
    Geometry and colours stay the same surface: only the triangle count changes."""

    def mean_area(obj: ObjectMesh) -> float:
        v = obj.vertices[obj.faces]
        return float(np.linalg.norm(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=1).mean()) / 2

    total = sum(len(o.faces) for o in objects)
    areas = [mean_area(o) for o in objects]
    while total < min_faces:
        k = int(np.argmax(areas))  # first of equal areas: deterministic
        obj = objects[k]
        total -= len(obj.faces)
        obj.vertices, obj.faces, obj.colors = subdivide(obj.vertices, obj.faces, obj.colors)
        total += len(obj.faces)
        areas[k] /= 4
