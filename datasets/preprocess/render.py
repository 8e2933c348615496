"""Depth and per-vertex panoptic ids of a mesh, rendered with stock pyrender in one pass.

The official script uses a pyrender fork whose SEG_VERT mode draws each triangle in the colour of its
provoking vertex (OpenGL's default: the last one, faces[:, 2]), with no lighting, no multisampling and back
faces culled. Stock pyrender gives the same pixels with per-face colours = id of faces[:, 2], FLAT shading,
an opaque material and multisampling switched off (our renderbuffers are allocated single-sample).

Needs PYOPENGL_PLATFORM (egl for headless) set before OpenGL is first imported.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np

from datasets.preprocess.errors import TransientSceneError
from datasets.preprocess.panoptic import MAX_ENCODABLE_ID, id2rgb

# OpenCV camera axes (x right, y down, z forward) -> OpenGL camera axes (y up, looking down -z).
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])

_lock = threading.RLock()
_offscreen = None  # one pyrender.OffscreenRenderer per process, created on first use


def _require_platform() -> None:
    if not os.environ.get("PYOPENGL_PLATFORM"):
        raise RuntimeError(
            "PYOPENGL_PLATFORM is not set: export PYOPENGL_PLATFORM=egl (headless) before starting Python"
        )


def _disable_multisampling() -> None:
    """Allocate pyrender's 'multisample' renderbuffers single-sample: MSAA would blend ids at edges."""
    import pyrender.renderer as pyrender_renderer
    from OpenGL.GL import glRenderbufferStorage

    if getattr(pyrender_renderer, "_panst3r_no_msaa", False):
        return

    def single_sample_storage(target, _samples, internal_format, width, height):
        glRenderbufferStorage(target, internal_format, width, height)

    pyrender_renderer.glRenderbufferStorageMultisample = single_sample_storage
    pyrender_renderer._panst3r_no_msaa = True


def _shared_offscreen(width: int, height: int):
    """The process-wide renderer (caller holds _lock); its viewport is resized per image."""
    global _offscreen
    if _offscreen is None:
        _require_platform()
        _disable_multisampling()
        import pyrender

        _offscreen = pyrender.OffscreenRenderer(width, height)
        _read_ids_and_depth_instead(_offscreen)
    _offscreen.viewport_width = width
    _offscreen.viewport_height = height
    return _offscreen


def _read_ids_and_depth_instead(offscreen) -> None:
    """Make `offscreen.render` return (ids, depth) read straight from the framebuffer.

    pyrender's own read linearises depth with boolean-mask gathers and returns RGB bytes that are then widened
    to ids: ~4 ms of memory-bound numpy per 920x613 frame, which many workers on one host pay in contention.
    Here the colour is read as RGBA words (id = word & 0xFFFFFF, alpha dropped) and depth is linearised in
    place with pyrender's float32 arithmetic, so both equal its results bit for bit."""
    renderer = offscreen._renderer

    def read_main_framebuffer(scene, _flags):
        camera = scene.main_camera_node.camera
        return read_ids_and_depth(renderer._main_fb_ms, renderer._main_fb, *renderer._main_fb_dims, camera)

    renderer._read_main_framebuffer = read_main_framebuffer  # an instance attribute: this renderer only


def read_ids_and_depth(multisample_fb, fb, width: int, height: int, camera) -> tuple[np.ndarray, np.ndarray]:
    """Blit the rendered framebuffer as pyrender does, then read (H, W) uint32 ids and (H, W) float32 depth."""
    from OpenGL import GL

    GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, multisample_fb)
    GL.glBindFramebuffer(GL.GL_DRAW_FRAMEBUFFER, fb)
    GL.glBlitFramebuffer(0, 0, width, height, 0, 0, width, height, GL.GL_COLOR_BUFFER_BIT, GL.GL_LINEAR)
    GL.glBlitFramebuffer(0, 0, width, height, 0, 0, width, height, GL.GL_DEPTH_BUFFER_BIT, GL.GL_NEAREST)
    GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, fb)
    window_depth = GL.glReadPixels(0, 0, width, height, GL.GL_DEPTH_COMPONENT, GL.GL_FLOAT)
    rgba = GL.glReadPixels(0, 0, width, height, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE)
    # OpenGL rows run bottom-up; the images run top-down.
    words = np.frombuffer(rgba, dtype="<u4").reshape(height, width)[::-1]
    ids = words & np.uint32(MAX_ENCODABLE_ID)
    window_depth = np.frombuffer(window_depth, dtype=np.float32).reshape(height, width)[::-1]
    return ids, linear_depth(window_depth, camera.znear, camera.zfar)


def linear_depth(window_depth: np.ndarray, znear: float, zfar: float) -> np.ndarray:
    """Window depth in [0, 1] -> planar z (float32), 0 where nothing was drawn (1.0): pyrender's formula
    `2 n f / (f + n - (2 d - 1)(f - n))`, each step in float32 as it computes it."""
    z = 2.0 * window_depth - 1.0  # a new float32 array, as in pyrender
    z *= np.float32(zfar - znear)
    np.subtract(np.float32(zfar + znear), z, out=z)
    np.divide(np.float32(2.0 * znear * zfar), z, out=z)
    z[window_depth == 1.0] = 0.0
    return z


def _release_context(offscreen) -> None:
    """Unbind the EGL context from this thread so that another thread (a Dask/Prefect worker thread) can
    make it current next time; pyrender's own make_uncurrent is a no-op on EGL."""
    platform = getattr(offscreen, "_platform", None)
    display = getattr(platform, "_egl_display", None)
    if display is None:
        return
    from OpenGL.EGL import EGL_NO_CONTEXT, EGL_NO_SURFACE, eglMakeCurrent

    eglMakeCurrent(display, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT)


def face_ids_from_vertex_ids(faces: np.ndarray, vertex_ids: np.ndarray) -> np.ndarray:
    """(F, 3) int faces, (N,) vertex ids -> (F,) ids: a face takes the id of its third vertex (provoking vertex)."""
    return np.asarray(vertex_ids)[np.asarray(faces)[:, 2]]


@dataclass(frozen=True)
class RenderedView:
    """ids: (H, W) uint32, 0 where nothing was hit; depth: (H, W) float32 planar z in metres, 0 where nothing."""

    ids: np.ndarray
    depth: np.ndarray


class IdDepthRenderer:
    """A mesh whose faces carry ids, ready to render from many cameras (one scene).

    vertices: (N, 3) float, mesh frame, metres; faces: (F, 3) int, counter-clockwise seen from the front;
    face_ids: (F,) non-negative ints < 2**24 (three 8-bit channels)."""

    def __init__(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        face_ids: np.ndarray,
        znear: float = 0.05,
        zfar: float = 20.0,
    ) -> None:
        import pyrender

        vertices = np.asarray(vertices, dtype=np.float64)
        faces = np.asarray(faces)
        face_ids = np.asarray(face_ids)
        if vertices.ndim != 2 or vertices.shape[1] != 3:
            raise ValueError(f"vertices must be (N, 3), got {vertices.shape}")
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise ValueError(f"faces must be (F, 3) triangles, got {faces.shape}")
        if face_ids.shape != (faces.shape[0],):
            raise ValueError(f"face_ids must be ({faces.shape[0]},), got {face_ids.shape}")
        if face_ids.size and (face_ids.min() < 0 or face_ids.max() > MAX_ENCODABLE_ID):
            raise ValueError(
                f"face ids must lie in [0, {MAX_ENCODABLE_ID}] to fit in RGB, got {face_ids.max()}"
            )
        if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
            raise ValueError(
                f"faces index vertices 0..{len(vertices) - 1}, found {faces.min()}..{faces.max()}"
            )
        self.znear = float(znear)
        self.zfar = float(zfar)
        # Unshared corners so that each face has its own constant colour (flat ids, not interpolated).
        positions = vertices[faces.reshape(-1)].astype(np.float32)
        colors = np.repeat(id2rgb(face_ids.astype(np.uint32)), 3, axis=0)
        material = pyrender.MetallicRoughnessMaterial(
            baseColorFactor=[1.0, 1.0, 1.0, 1.0], alphaMode="OPAQUE", doubleSided=False
        )
        primitive = pyrender.Primitive(positions=positions, color_0=colors, material=material)
        self._scene = pyrender.Scene(bg_color=[0.0, 0.0, 0.0, 0.0], ambient_light=[0.0, 0.0, 0.0])
        self._scene.add(pyrender.Mesh(primitives=[primitive]))
        self._camera = pyrender.IntrinsicsCamera(1.0, 1.0, 0.0, 0.0, znear=self.znear, zfar=self.zfar)
        self._camera_node = self._scene.add(self._camera, pose=np.eye(4))

    @classmethod
    def from_vertex_ids(cls, vertices, faces, vertex_ids, znear: float = 0.05, zfar: float = 20.0):
        """Per-vertex ids (N,) as in ScanNet++ segments: each face is drawn with the id of faces[:, 2]."""
        return cls(vertices, faces, face_ids_from_vertex_ids(faces, vertex_ids), znear=znear, zfar=zfar)

    def render(self, K: np.ndarray, cam_to_world: np.ndarray, width: int, height: int) -> RenderedView:
        """K: (3, 3) COLMAP convention (pixel centres at +0.5, which is also OpenGL's window convention);
        cam_to_world: (4, 4) OpenCV camera axes. Returns ids and depth of the (height, width) image."""
        import pyrender

        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        K = np.asarray(K, dtype=np.float64)
        self._camera.fx, self._camera.fy = float(K[0, 0]), float(K[1, 1])
        self._camera.cx, self._camera.cy = float(K[0, 2]), float(K[1, 2])
        self._scene.set_pose(self._camera_node, np.asarray(cam_to_world, dtype=np.float64) @ OPENCV_TO_OPENGL)
        global _offscreen
        with _lock:
            offscreen = _shared_offscreen(int(width), int(height))
            try:
                ids, depth = offscreen.render(self._scene, flags=pyrender.RenderFlags.FLAT)
            except Exception as exc:
                # A lost or broken GL context is not the scene's fault: drop the renderer so that the retry
                # of this scene starts from a fresh one.
                _offscreen = None
                raise TransientSceneError(
                    f"pyrender failed ({type(exc).__name__}: {exc}); the renderer was reset"
                ) from exc
            finally:
                if _offscreen is not None:
                    _release_context(offscreen)
        return RenderedView(ids=ids, depth=depth)
