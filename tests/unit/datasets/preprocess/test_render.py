"""pyrender id + depth pass against analytic geometry: planar depth, exact per-face ids, back-face culling."""

from __future__ import annotations

import os
import threading

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import numpy as np
import pytest
import trimesh

from datasets.preprocess import render as render_module
from datasets.preprocess.render import IdDepthRenderer, face_ids_from_vertex_ids, linear_depth

W, H = 160, 120
K = np.array([[150.0, 0.0, 80.0], [0.0, 150.0, 60.0], [0.0, 0.0, 1.0]])  # COLMAP convention


def look_at(eye, target, down=(0.0, 0.0, -1.0)) -> np.ndarray:
    """cam_to_world (4, 4), OpenCV axes: z towards the target, y roughly along `down`."""
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, np.asarray(down, float))
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x, y, z], axis=1)
    pose[:3, 3] = eye
    return pose


def pixel_centres(width: int = W, height: int = H) -> np.ndarray:
    """(H, W, 2) COLMAP coordinates of the pixel centres."""
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    return np.stack([u, v], axis=-1)


def project(points_world: np.ndarray, cam_to_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    world_to_cam = np.linalg.inv(cam_to_world)
    cam = points_world @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    uv = cam[:, :2] / cam[:, 2:3] * [K[0, 0], K[1, 1]] + K[:2, 2]
    return uv, cam[:, 2]


def analytic_face_ids(vertices, faces, face_ids, cam_to_world, margin=0.02):
    """Id of the front-facing projected triangle that contains each pixel centre (a convex mesh seen from
    outside: at most one). Pixels closer than `margin` px to an edge are marked -1 (ambiguous)."""
    uv, _ = project(vertices, cam_to_world)
    centres = pixel_centres().reshape(-1, 2)
    out = np.zeros(len(centres), np.int64)
    for face, fid in zip(faces, face_ids):
        a, b, c = uv[face]
        signed_area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        # OpenCV image axes (y down): a front face (normal towards the camera) winds clockwise on screen.
        if signed_area >= 0:
            continue
        edges = []
        for p, q in ((a, b), (b, c), (c, a)):
            cross = (q[0] - p[0]) * (centres[:, 1] - p[1]) - (q[1] - p[1]) * (centres[:, 0] - p[0])
            edges.append(cross / np.hypot(*(q - p)))  # signed distance in pixels
        dist = np.stack(edges, axis=1)
        inside = np.all(dist < 0, axis=1)
        near = np.all(dist < margin, axis=1) & ~np.all(dist < -margin, axis=1)
        out[inside] = fid
        out[near] = -1
    return out.reshape(H, W)


def test_plane_depth_and_ids_face_on():
    d = 2.345
    vertices = np.array([[-3, -3, d], [3, -3, d], [3, 3, d], [-3, 3, d]], float)
    faces = np.array([[0, 2, 1], [0, 3, 2]])  # normals -z: towards the camera at the origin
    renderer = IdDepthRenderer(vertices, faces, np.array([7 * 256 + 3, 70000]))
    view = renderer.render(K, np.eye(4), W, H)
    assert view.ids.shape == (H, W) and view.ids.dtype == np.uint32
    assert view.depth.shape == (H, W) and view.depth.dtype == np.float32
    assert np.all(np.abs(view.depth - d) < 1e-3)
    assert set(np.unique(view.ids).tolist()) == {7 * 256 + 3, 70000}


def test_tilted_plane_depth_matches_ray_intersection():
    rng = np.random.default_rng(1)
    normal = np.array([0.3, -0.2, -1.0])
    normal /= np.linalg.norm(normal)
    point = np.array([0.1, 0.05, 3.0])
    # A large square in that plane, wound so its normal faces the camera.
    u_axis = np.cross(normal, [0.0, 1.0, 0.0])
    u_axis /= np.linalg.norm(u_axis)
    v_axis = np.cross(normal, u_axis)
    corners = np.array(
        [point + 10 * (su * u_axis + sv * v_axis) for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    )
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    if np.dot(np.cross(corners[1] - corners[0], corners[2] - corners[0]), normal) < 0:
        faces = faces[:, ::-1]
    cam_to_world = np.eye(4)
    cam_to_world[:3, 3] = rng.normal(0, 0.01, 3)
    renderer = IdDepthRenderer(corners, faces, np.array([5, 5]))
    view = renderer.render(K, cam_to_world, W, H)
    centres = pixel_centres()
    rays = np.concatenate([(centres - K[:2, 2]) / [K[0, 0], K[1, 1]], np.ones((H, W, 1))], axis=-1)
    origin = cam_to_world[:3, 3]
    t = np.dot(point - origin, normal) / (rays @ normal)  # z component of the ray is 1, so t is the depth
    assert np.abs(view.depth - t).max() < 1e-3
    assert np.all(view.ids == 5)


def test_box_front_face_at_known_distance():
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    box.apply_translation([0.0, 0.0, 4.0])  # front face at z = 3.5
    renderer = IdDepthRenderer(box.vertices, box.faces, np.arange(1, len(box.faces) + 1))
    view = renderer.render(K, np.eye(4), W, H)
    hit = view.depth > 0
    # The box spans |x| <= 0.5 at z = 3.5: 150 * 0.5 / 3.5 = 21.4 px around the centre.
    assert hit[60, 80] and not hit[5, 5]
    assert np.all(np.abs(view.depth[hit] - 3.5) < 1e-3)
    assert abs(hit.sum() - (2 * 150 * 0.5 / 3.5) ** 2) < 2 * 2 * 150 * 0.5 / 3.5 + 4
    assert np.all(view.ids[~hit] == 0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ids_exact_on_a_known_mesh(seed):
    rng = np.random.default_rng(seed)
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=1.0)
    centre = np.array([0.0, 0.0, 0.0])
    direction = rng.normal(size=3)
    eye = centre + 3.2 * direction / np.linalg.norm(direction)
    cam_to_world = look_at(eye, centre + rng.normal(0, 0.1, 3))
    # Ids across all three channels: instance * 256 + class with large instances.
    face_ids = rng.choice(np.arange(1, 2**24), size=len(sphere.faces), replace=False)
    renderer = IdDepthRenderer(sphere.vertices, sphere.faces, face_ids)
    view = renderer.render(K, cam_to_world, W, H)
    expected = analytic_face_ids(sphere.vertices, sphere.faces, face_ids, cam_to_world)
    decided = expected >= 0
    assert decided.mean() > 0.97
    np.testing.assert_array_equal(view.ids[decided], expected[decided])
    # No blended or invented ids anywhere, ambiguous edge pixels included.
    assert set(np.unique(view.ids).tolist()) <= set(face_ids.tolist()) | {0}
    assert np.all((view.depth > 0) == (view.ids > 0))


def test_back_faces_are_not_drawn():
    near, far = 1.5, 3.0
    quad = np.array([[-5, -5, 0], [5, -5, 0], [5, 5, 0], [-5, 5, 0]], float)
    vertices = np.concatenate([quad + [0, 0, near], quad + [0, 0, far]])
    facing_away = np.array([[0, 1, 2], [0, 2, 3]])  # normal +z: seen from behind by the camera
    facing_camera = np.array([[4, 6, 5], [4, 7, 6]])  # normal -z
    faces = np.concatenate([facing_away, facing_camera])
    renderer = IdDepthRenderer(vertices, faces, np.array([11, 11, 22, 22]))
    view = renderer.render(K, np.eye(4), W, H)
    assert np.all(view.ids == 22)
    assert np.all(np.abs(view.depth - far) < 1e-3)


def test_face_takes_the_id_of_its_third_vertex():
    faces = np.array([[0, 1, 2], [2, 1, 3]])
    vertex_ids = np.array([10, 20, 30, 40])
    np.testing.assert_array_equal(face_ids_from_vertex_ids(faces, vertex_ids), [30, 40])
    d = 2.0
    vertices = np.array([[-3, -3, d], [3, -3, d], [-3, 3, d], [3, 3, d]], float)
    # Both faces wound towards the camera; each must be uniformly its third vertex's id, no interpolation.
    faces = np.array([[0, 2, 1], [1, 2, 3]])
    renderer = IdDepthRenderer.from_vertex_ids(vertices, faces, vertex_ids)
    view = renderer.render(K, np.eye(4), W, H)
    assert set(np.unique(view.ids).tolist()) == {20, 40}


def test_renderer_is_reused_across_scenes_and_sizes():
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    box.apply_translation([0.0, 0.0, 3.0])
    first = IdDepthRenderer(box.vertices, box.faces, np.full(len(box.faces), 9))
    second = IdDepthRenderer(box.vertices, box.faces, np.full(len(box.faces), 77))
    a = first.render(K, np.eye(4), W, H)
    b = second.render(K * [[0.5], [0.5], [1]], np.eye(4), W // 2, H // 2)
    c = first.render(K, np.eye(4), W, H)
    assert b.ids.shape == (H // 2, W // 2)
    assert set(np.unique(b.ids).tolist()) == {0, 77}
    np.testing.assert_array_equal(a.ids, c.ids)
    np.testing.assert_array_equal(a.depth, c.depth)


def test_renderer_works_from_another_thread():
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    box.apply_translation([0.0, 0.0, 3.0])
    renderer = IdDepthRenderer(box.vertices, box.faces, np.full(len(box.faces), 5))
    results = {}
    # Dask/Prefect run tasks on worker threads: the shared EGL context must follow the calling thread.
    worker = threading.Thread(
        target=lambda: results.setdefault("thread", renderer.render(K, np.eye(4), W, H))
    )
    worker.start()
    worker.join()
    here = renderer.render(K, np.eye(4), W, H)
    np.testing.assert_array_equal(results["thread"].ids, here.ids)
    assert (here.ids == 5).sum() > 100


def pyrender_own_read(renderer: IdDepthRenderer):
    """What stock pyrender reads from the framebuffer the last render left: (ids from its RGB, its depth)."""
    import pyrender
    from pyrender.renderer import Renderer

    offscreen = render_module._offscreen
    with render_module._lock:
        offscreen._platform.make_current()
        flags = pyrender.RenderFlags.FLAT | pyrender.RenderFlags.OFFSCREEN
        color, depth = Renderer._read_main_framebuffer(offscreen._renderer, renderer._scene, flags)
        render_module._release_context(offscreen)
    color = color.astype(np.uint32)
    return color[..., 0] | (color[..., 1] << 8) | (color[..., 2] << 16), depth


@pytest.mark.parametrize("seed", [3, 4])
def test_direct_read_equals_pyrenders_own_read_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    sphere.apply_translation(rng.normal(0, 0.3, 3))
    face_ids = rng.integers(1, 2**24, size=len(sphere.faces))
    renderer = IdDepthRenderer(sphere.vertices, sphere.faces, face_ids, znear=0.05, zfar=20.0)
    direction = rng.normal(size=3)
    view = renderer.render(K, look_at(2.5 * direction / np.linalg.norm(direction), [0.0, 0.0, 0.0]), W, H)
    ids, depth = pyrender_own_read(renderer)
    assert 0 < (view.ids > 0).mean() < 1  # both the mesh and the empty background are compared
    np.testing.assert_array_equal(view.ids, ids)
    np.testing.assert_array_equal(view.depth, depth)
    assert view.ids.dtype == np.uint32 and view.depth.dtype == np.float32


def test_linear_depth_is_pyrenders_float32_formula_and_zero_where_nothing_was_drawn():
    window = np.array([[0.0, 0.5, 0.999], [0.9999, 1.0, 0.25]], dtype=np.float32)
    near, far = 0.05, 20.0
    z = 2.0 * window - 1.0
    expected = (2.0 * near * far) / (far + near - z * (far - near))
    expected[window == 1.0] = 0.0
    got = linear_depth(window, near, far)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    assert got[0, 0] == pytest.approx(near) and got[1, 1] == 0.0
    assert window[1, 1] == 1.0  # the input is left as it was


def test_invalid_inputs_raise():
    vertices = np.zeros((3, 3))
    with pytest.raises(ValueError, match="2\\*\\*24|fit in RGB"):
        IdDepthRenderer(vertices, np.array([[0, 1, 2]]), np.array([2**24]))
    with pytest.raises(ValueError, match="faces index"):
        IdDepthRenderer(vertices, np.array([[0, 1, 3]]), np.array([1]))
    renderer = IdDepthRenderer(vertices, np.array([[0, 1, 2]]), np.array([1]))
    with pytest.raises(ValueError, match="positive"):
        renderer.render(K, np.eye(4), 0, H)
