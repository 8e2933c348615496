"""Primitives are closed and wound outward, the room is wound inward, every face belongs to one object,
and every face a camera sees on the generated path faces that camera."""

from __future__ import annotations

import numpy as np
import pytest

from datasets.synthetic import furniture
from datasets.synthetic.geometry import box, combine, ellipsoid, frustum, grid
from datasets.synthetic.layout import build_layout


def _signed_volume(vertices, faces):
    v = vertices[faces]
    return np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6.0


def _face_normals(vertices, faces):
    v = vertices[faces]
    return np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])


def _edges_closed(faces):
    # a closed, consistently wound surface uses every directed edge exactly once and its reverse once
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    forward = {tuple(e) for e in edges.tolist()}
    return len(forward) == len(edges) and all((b, a) in forward for a, b in forward)


@pytest.mark.parametrize(
    "mesh, volume",
    [
        (box((0.5, 0.4, 0.3), 0.1), 0.5 * 0.4 * 0.3),
        (frustum(0.2, 0.1, 0.5, 0.05), None),
        (ellipsoid((0.3, 0.2, 0.1), 0.05), 4 / 3 * np.pi * 0.3 * 0.2 * 0.1),
    ],
    ids=["box", "frustum", "ellipsoid"],
)
def test_primitives_are_closed_and_outward(mesh, volume):
    vertices, faces = mesh
    signed = _signed_volume(vertices, faces)
    assert signed > 0
    if volume is not None:
        assert signed == pytest.approx(volume, rel=0.08)
    centre = vertices.mean(0)
    centroids = vertices[faces].mean(1)
    assert np.all(np.einsum("ij,ij->i", _face_normals(vertices, faces), centroids - centre) > 0)


def test_box_grid_is_watertight_per_side_and_inward_flag_flips():
    vertices, faces = box((1, 1, 1), 0.25, inward=True)
    assert _signed_volume(vertices, faces) == pytest.approx(-1.0)
    vertices, faces = grid((0, 0, 0), (1, 0, 0), (0, 1, 0), 0.3)
    assert np.all(_face_normals(vertices, faces)[:, 2] > 0)
    assert _edges_closed(ellipsoid((0.2, 0.2, 0.3), 0.1)[1])


@pytest.mark.parametrize("shape", furniture.SHAPES)
def test_every_shape_family_is_outward(shape):
    parts = furniture.build(shape, (0.6, 0.5, 0.8), np.random.default_rng(0), 0.05)
    for vertices, faces, role in parts:
        assert role in ("main", "accent")
        assert _signed_volume(vertices, faces) > 0, shape
        assert faces.min() >= 0 and faces.max() < len(vertices)


@pytest.fixture(scope="module")
def layout():
    return build_layout(np.random.default_rng(5))


def test_room_shell_faces_point_into_the_room(layout):
    room = layout.room
    inside = np.array([room.size_x / 2, room.size_y / 2, room.height / 2])
    for obj in layout.objects:
        if obj.label in ("wall", "floor", "ceiling"):
            centroids = obj.vertices[obj.faces].mean(1)
            normals = _face_normals(obj.vertices, obj.faces)
            assert np.all(np.einsum("ij,ij->i", normals, inside - centroids) > 0), obj.label


def test_each_face_has_one_object_and_objects_are_disjoint(layout):
    mesh = combine(layout.objects)
    owner = mesh.vertex_object[mesh.faces]
    assert np.all(owner[:, 0] == owner[:, 1]) and np.all(owner[:, 1] == owner[:, 2])
    assert mesh.vertex_ranges[0][0] == 0 and mesh.vertex_ranges[-1][1] == len(mesh.vertices)
    assert all(end > start for start, end in mesh.vertex_ranges)
    labels = [o.label for o in layout.objects]
    assert labels.count("wall") == 4 and "floor" in labels and "ceiling" in labels
    assert len(layout.objects) >= 15


def test_layouts_are_deterministic_and_vary_with_the_seed():
    a = combine(build_layout(np.random.default_rng(1)).objects)
    b = combine(build_layout(np.random.default_rng(1)).objects)
    c = combine(build_layout(np.random.default_rng(2)).objects)
    np.testing.assert_array_equal(a.vertices, b.vertices)
    np.testing.assert_array_equal(a.colors, b.colors)
    assert a.vertices.shape != c.vertices.shape or not np.array_equal(a.vertices, c.vertices)


def test_subdivide_keeps_the_closed_outward_surface_with_four_times_the_faces():
    from datasets.synthetic.geometry import subdivide

    vertices, faces = ellipsoid((0.3, 0.2, 0.25), 0.1)
    assert _edges_closed(faces)
    colors = np.random.default_rng(0).integers(0, 256, (len(vertices), 3)).astype(np.uint8)
    new_vertices, new_faces, new_colors = subdivide(vertices, faces, colors)
    assert len(new_faces) == 4 * len(faces) and len(new_colors) == len(new_vertices)
    assert _edges_closed(new_faces)  # one vertex per edge: no cracks between neighbouring faces
    # new vertices lie on the old faces: the enclosed volume (and its positive, outward sign) is unchanged
    volume = _signed_volume(vertices, faces)
    assert volume > 0 and _signed_volume(new_vertices, new_faces) == pytest.approx(volume)
    np.testing.assert_array_equal(new_vertices[: len(vertices)], vertices)
    np.testing.assert_array_equal(new_colors[: len(colors)], colors)


def test_densify_reaches_the_face_count_without_moving_any_object():
    from datasets.synthetic.geometry import densify

    layout = build_layout(np.random.default_rng([0, 0]))
    extents = [(o.vertices.min(0), o.vertices.max(0)) for o in layout.objects]
    before = sum(len(o.faces) for o in layout.objects)
    densify(layout.objects, 2 * before)
    assert sum(len(o.faces) for o in layout.objects) >= 2 * before
    for obj, (low, high) in zip(layout.objects, extents):
        np.testing.assert_allclose(obj.vertices.min(0), low)
        np.testing.assert_allclose(obj.vertices.max(0), high)
        assert len(obj.colors) == len(obj.vertices) and obj.faces.max() < len(obj.vertices)
    faces = [len(o.faces) for o in layout.objects]
    densify(layout.objects, 10)  # already dense enough: unchanged
    assert [len(o.faces) for o in layout.objects] == faces
