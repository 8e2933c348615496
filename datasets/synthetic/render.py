"""RGB + depth rendering of a vertex-coloured scene mesh with pyrender on EGL (one renderer per process).

The colours already carry baked lighting (lighting.py), so the mesh is drawn unlit (RenderFlags.FLAT).

Multisampling is switched off exactly as the preprocessing renderer does it (pyrender's framebuffer is
created without samples), so images do not depend on which module created the GL context first; the
fisheye warp blurs edges a little instead.
"""

from __future__ import annotations

import os

import numpy as np

_offscreen = None
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])


def _disable_multisampling() -> None:
    import pyrender.renderer as pyrender_renderer
    from OpenGL.GL import glRenderbufferStorage

    def single_sample_storage(target, _samples, internal_format, width, height):
        glRenderbufferStorage(target, internal_format, width, height)

    pyrender_renderer.glRenderbufferStorageMultisample = single_sample_storage


def offscreen_renderer(width: int, height: int):
    """The process-wide pyrender OffscreenRenderer, resized to (width, height), multisampling off."""
    global _offscreen
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    import pyrender

    _disable_multisampling()
    if _offscreen is None:
        _offscreen = pyrender.OffscreenRenderer(width, height)
    else:
        _offscreen.viewport_width, _offscreen.viewport_height = width, height
    return _offscreen


class SceneRenderer:
    """Holds the pyrender scene of one mesh; `render` draws it from any pinhole camera."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray):
        """vertices (N, 3), faces (F, 3), colors (N, 3) uint8 (lit)."""
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
        import pyrender
        import trimesh

        mesh = trimesh.Trimesh(
            vertices=np.asarray(vertices, dtype=np.float64),
            faces=np.asarray(faces),
            vertex_colors=np.concatenate([colors, np.full((len(colors), 1), 255, np.uint8)], 1),
            process=False,
        )
        # No material argument: from_trimesh(material=...) silently drops the vertex colours.
        # smooth=True shares vertices between faces, so colours interpolate across each grid.
        self.scene = pyrender.Scene(ambient_light=np.ones(3), bg_color=np.zeros(4))
        self.scene.add(pyrender.Mesh.from_trimesh(mesh, smooth=True))

    def render(self, K: np.ndarray, width: int, height: int, cam_to_world: np.ndarray):
        """K (3, 3) pinhole intrinsics in the COLMAP pixel convention (pyrender's own), cam_to_world (4, 4)
        in OpenCV axes. Returns rgb (H, W, 3) uint8 and depth (H, W) float32 metres (0 = nothing)."""
        import pyrender

        camera = pyrender.IntrinsicsCamera(K[0, 0], K[1, 1], K[0, 2], K[1, 2], znear=0.05, zfar=30.0)
        node = self.scene.add(camera, pose=np.asarray(cam_to_world) @ OPENCV_TO_OPENGL)
        try:
            rgb, depth = offscreen_renderer(width, height).render(self.scene, flags=pyrender.RenderFlags.FLAT)
        finally:
            self.scene.remove_node(node)
        return np.ascontiguousarray(rgb[..., :3]), depth.astype(np.float32)
