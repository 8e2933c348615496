"""Rendering conventions: pyrender intrinsics in the COLMAP pixel convention with OpenCV poses, and every
face the cameras of a generated path see is wound toward them (the official renderer culls back faces)."""

from __future__ import annotations

import numpy as np
import pytest

pyrender = pytest.importorskip("pyrender")

from datasets.synthetic.geometry import box, combine  # noqa: E402
from datasets.synthetic.layout import build_layout  # noqa: E402
from datasets.synthetic.render import SceneRenderer, offscreen_renderer  # noqa: E402
from datasets.synthetic.trajectory import look_at, scan_path  # noqa: E402


def test_small_cube_lands_where_the_intrinsics_say():
    vertices, faces = box((0.04, 0.04, 0.04), 0.04)
    centre = np.array([0.3, -0.2, 0.0])
    vertices = vertices - 0.02 + centre
    renderer = SceneRenderer(vertices, faces, np.full((len(vertices), 3), 255, np.uint8))
    pose = look_at(np.array([0.0, -3.0, 0.5]), np.array([0.0, 0.0, 0.3]))
    K = np.array([[300.0, 0, 161.0], [0, 300.0, 119.0], [0, 0, 1]])
    rgb, depth = renderer.render(K, 320, 240, pose)
    world_to_cam = np.linalg.inv(pose)
    p = world_to_cam[:3, :3] @ centre + world_to_cam[:3, 3]
    expected = (K @ (p / p[2]))[:2]  # COLMAP convention: pixel (i, j) covers [i, i+1) x [j, j+1)
    rows, cols = np.nonzero(rgb[..., 0] > 128)
    observed = np.array([cols.mean() + 0.5, rows.mean() + 0.5])
    assert np.linalg.norm(observed - expected) < 0.5
    assert depth[rows, cols].mean() == pytest.approx(p[2], abs=0.03)


def test_visible_faces_face_the_camera():
    rng = np.random.default_rng(3)
    layout = build_layout(rng)
    mesh = combine(layout.objects)
    v = mesh.vertices.astype(np.float64)
    normals = np.cross(v[mesh.faces[:, 1]] - v[mesh.faces[:, 0]], v[mesh.faces[:, 2]] - v[mesh.faces[:, 0]])
    ids = np.arange(1, len(mesh.faces) + 1)
    face_rgba = np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255, np.full_like(ids, 255)], 1)
    import trimesh

    tm = trimesh.Trimesh(v, mesh.faces, process=False)
    tm.visual = trimesh.visual.ColorVisuals(tm, face_colors=face_rgba.astype(np.uint8))
    scene = pyrender.Scene(ambient_light=np.ones(3), bg_color=np.zeros(4))
    scene.add(pyrender.Mesh.from_trimesh(tm, smooth=False))
    culled = pyrender.RenderFlags.FLAT
    unculled = pyrender.RenderFlags.FLAT | pyrender.RenderFlags.SKIP_CULL_FACES
    checked = 0
    for pose in scan_path(layout, rng, 4):
        camera = pyrender.IntrinsicsCamera(110.0, 110.0, 100.0, 75.0, 0.05, 30.0)
        node = scene.add(camera, pose=pose @ np.diag([1, -1, -1, 1.0]))
        ids_all = _decode(offscreen_renderer(200, 150).render(scene, flags=unculled)[0])
        ids_front = _decode(offscreen_renderer(200, 150).render(scene, flags=culled)[0])
        scene.remove_node(node)
        # Culling back faces (what the official id renderer does) changes (almost) nothing: no holes.
        assert np.mean(ids_all != ids_front) < 1e-3
        seen, pixels = np.unique(ids_all[ids_all > 0] - 1, return_counts=True)
        assert seen.max() < len(mesh.faces)
        centroids = v[mesh.faces[seen]].mean(1)
        facing = np.einsum("ij,ij->i", normals[seen], pose[:3, 3] - centroids) > 0
        # Only isolated edge pixels (depth ties where two faces meet) may show a back face.
        assert pixels[~facing].sum() <= 1e-3 * ids_all.size, (
            f"{np.sum(~facing)} of {len(seen)} faces face away"
        )
        checked += len(seen)
    assert checked > 1000


def _decode(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] | (rgb[..., 1] << 8) | (rgb[..., 2] << 16)
