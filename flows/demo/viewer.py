"""The 3-D viewer of one demo session: a viser server drawing one `PanopticReconstruction`.

GUI (as in the official demo, spec section 9): Points (min. confidence 0-10 default 3, point size in cm
0.1-2 default 0.5, local pointmaps on), Segmentation (opacity 0-1 default 0.5, show labels, regenerate
colours), Poses (show poses off, camera size 0.5), optional camera animation (FPS 60, speed 1, radius 10),
a per-client "Reset camera" button. Up direction is -y (OpenCV cameras).

The pure functions below (blending, point selection, label anchors) hold the maths and are
tested without a server; `SceneViewer` only wires them to viser.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np
import viser
import viser.transforms as vtf

from datasets.point_cloud_export import world_points
from datasets.prediction_export import segment_color_map
from panst3r_core.reconstruction import PanopticReconstruction

log = logging.getLogger(__name__)

# Frustum images are only thumbnails: bound their width to keep the websocket messages small.
FRUSTUM_IMAGE_WIDTH = 160


# ---------------------------------------------------------------------------------------------- maths


def blend_segment_colors(
    rgb: np.ndarray, seg_ids: np.ndarray, id_to_color: dict[int, tuple[int, int, int]], opacity: float
) -> np.ndarray:
    """(M, 3) uint8 point colours: image colour blended with the segment's colour.

    rgb: (M, 3) uint8; seg_ids: (M,) ints; points of id 0 (void) or of ids missing from `id_to_color`
    keep their image colour. opacity 0 shows the images, 1 the flat segment colours.
    """
    if opacity <= 0 or not id_to_color:
        return rgb.copy()
    ids = np.array(sorted(id_to_color), dtype=np.int64)
    colors = np.array([id_to_color[i] for i in ids], dtype=np.float32)
    pos = np.clip(np.searchsorted(ids, seg_ids), 0, len(ids) - 1)
    hit = ids[pos] == seg_ids
    out = rgb.astype(np.float32)
    out[hit] = (1.0 - opacity) * out[hit] + opacity * colors[pos[hit]]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class VisiblePoints:
    """Points passing the confidence threshold: xyz (M, 3) float32, rgb (M, 3) uint8, seg (M,) int64."""

    xyz: np.ndarray
    rgb: np.ndarray
    seg: np.ndarray


def select_points(recon: PanopticReconstruction, min_conf: float, use_local: bool) -> VisiblePoints:
    """Flatten all views, keeping pixels whose point confidence is >= min_conf.

    use_local: points from each view's local pointmap moved by its estimated pose (the official
    default); else the network's global pointmap.
    """
    xyz, rgb, seg = [], [], []
    for v in range(recon.num_views):
        keep = recon.confidence[v] >= min_conf
        xyz.append(world_points(recon, v, use_local)[keep])
        rgb.append(recon.images[v][keep])
        seg.append(recon.panoptic[v][keep].astype(np.int64))
    if not xyz:
        return VisiblePoints(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8), np.zeros(0, np.int64))
    return VisiblePoints(np.concatenate(xyz), np.concatenate(rgb), np.concatenate(seg))


def label_anchors(points: VisiblePoints) -> dict[int, np.ndarray]:
    """{segment id: (3,) median of its visible points}; void and segments without visible points absent."""
    anchors: dict[int, np.ndarray] = {}
    for seg_id in np.unique(points.seg):
        if seg_id == 0:
            continue
        anchors[int(seg_id)] = np.median(points.xyz[points.seg == seg_id], axis=0)
    return anchors


def vertical_fov(height: int, focal: float) -> float:
    """Vertical field of view in radians of a pinhole camera with the principal point at the centre."""
    return float(2.0 * np.arctan2(height / 2.0, focal))


def thumbnail(image: np.ndarray, width: int = FRUSTUM_IMAGE_WIDTH) -> np.ndarray:
    """Nearest-neighbour downscale of an (H, W, 3) image to at most `width` columns."""
    h, w = image.shape[:2]
    if w <= width:
        return image
    step = w / width
    rows = (np.arange(int(round(h / step))) * step).astype(int).clip(0, h - 1)
    cols = (np.arange(width) * step).astype(int).clip(0, w - 1)
    return image[rows][:, cols]


# ---------------------------------------------------------------------------------------------- server


class SceneViewer:
    """One viser server showing one scene to every browser tab that opens its URL.

    Each demo session owns one SceneViewer (its own port), which is what keeps sessions apart.
    `set_scene` replaces what is shown; GUI callbacks redraw from the stored reconstruction.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, camera_animation: bool = False) -> None:
        # viser tries port, port+1, ... until one binds; get_port() reports the bound one.
        self.server = viser.ViserServer(host=host, port=port, label="PanSt3R", verbose=False)
        self.server.scene.set_up_direction("-y")
        self._lock = threading.RLock()
        self._scene: PanopticReconstruction | None = None
        self._palette_seed = 0
        self._stop = threading.Event()
        self._build_gui(camera_animation)
        self.server.on_client_connect(self._add_client_controls)
        self._animation_thread: threading.Thread | None = None
        if camera_animation:
            self._animation_thread = threading.Thread(target=self._animate, daemon=True)
            self._animation_thread.start()

    @property
    def port(self) -> int:
        return self.server.get_port()

    @property
    def scene(self) -> PanopticReconstruction | None:
        return self._scene

    # -- GUI

    def _build_gui(self, camera_animation: bool) -> None:
        gui = self.server.gui
        with gui.add_folder("Points"):
            self.min_conf = gui.add_slider("Min. confidence threshold", 0.0, 10.0, 0.1, 3.0)
            self.point_size_cm = gui.add_slider("Point size (cm)", 0.1, 2.0, 0.1, 0.5)
            self.use_local = gui.add_checkbox("Local pointmaps", True)
        with gui.add_folder("Segmentation"):
            self.opacity = gui.add_slider("Opacity", 0.0, 1.0, 0.05, 0.5)
            self.show_labels = gui.add_checkbox("Show labels", True)
            regenerate = gui.add_button("Regenerate colors")
        with gui.add_folder("Poses"):
            self.show_poses = gui.add_checkbox("Show poses", False)
            self.camera_size = gui.add_slider("Camera size", 0.05, 2.0, 0.05, 0.5)
        self.animate = None
        if camera_animation:
            with gui.add_folder("Camera animation"):
                self.animate = gui.add_checkbox("Animate", False)
                self.anim_fps = gui.add_slider("FPS", 1, 120, 1, 60)
                self.anim_speed = gui.add_slider("Speed", 0.0, 5.0, 0.1, 1.0)
                self.anim_radius = gui.add_slider("Radius", 0.1, 50.0, 0.1, 10.0)

        for handle in (self.min_conf, self.use_local):
            handle.on_update(lambda _: self._draw_points_and_labels())
        self.opacity.on_update(lambda _: self._draw_points_and_labels())
        self.point_size_cm.on_update(lambda _: self._set_point_size())
        self.show_labels.on_update(lambda _: self._draw_points_and_labels())
        self.show_poses.on_update(lambda _: self._draw_cameras())
        self.camera_size.on_update(lambda _: self._draw_cameras())

        @regenerate.on_click
        def _(_: viser.GuiEvent) -> None:
            self._palette_seed += 1
            self._draw_points_and_labels()

    def _add_client_controls(self, client: viser.ClientHandle) -> None:
        reset = client.gui.add_button("Reset camera")

        @reset.on_click
        def _(_: viser.GuiEvent) -> None:
            pose = self._home_camera()
            if pose is not None:
                client.camera.position, client.camera.look_at = pose
                client.camera.up_direction = (0.0, -1.0, 0.0)

    # -- drawing

    def set_scene(self, scene: PanopticReconstruction) -> None:
        """Replace whatever is shown by `scene` (all views, segments, cameras)."""
        with self._lock:
            self._scene = scene
            self._palette_seed = 0
            home = self._home_camera()
            if home is not None:
                self.server.initial_camera.position, self.server.initial_camera.look_at = home
            self.server.scene.reset()
            self._draw_points_and_labels()
            self._draw_cameras()
            if home is not None:
                for client in self.server.get_clients().values():
                    client.camera.position, client.camera.look_at = home

    def _home_camera(self) -> tuple[np.ndarray, np.ndarray] | None:
        """A view from behind the first camera towards the middle of the points (position, look_at)."""
        scene = self._scene
        if scene is None:
            return None
        pts = select_points(scene, 0.0, False).xyz
        center = np.median(pts, axis=0) if len(pts) else np.zeros(3, np.float32)
        cam0 = scene.cam_to_world[0]
        forward = cam0[:3, 2]
        distance = float(np.linalg.norm(center - cam0[:3, 3])) or 1.0
        return cam0[:3, 3] - 0.5 * distance * forward - 0.3 * distance * cam0[:3, 1], center

    def _set_point_size(self) -> None:
        handle = getattr(self, "_points_handle", None)
        if handle is not None:
            handle.point_size = self.point_size_cm.value / 100.0

    def _draw_points_and_labels(self) -> None:
        with self._lock:
            scene = self._scene
            if scene is None:
                return
            points = select_points(scene, self.min_conf.value, self.use_local.value)
            palette = segment_color_map(scene, seed=self._palette_seed)
            colors = blend_segment_colors(points.rgb, points.seg, palette, self.opacity.value)
            with self.server.atomic():
                self._points_handle = self.server.scene.add_point_cloud(
                    "/points",
                    points=points.xyz if len(points.xyz) else np.zeros((1, 3), np.float32),
                    colors=colors if len(colors) else np.zeros((1, 3), np.uint8),
                    point_size=self.point_size_cm.value / 100.0,
                    precision="float32",
                    point_shading="flat",
                    visible=bool(len(points.xyz)),
                )
                self.server.scene.remove_by_name("/labels")
                if self.show_labels.value:
                    names = {s.id: s.class_name for s in scene.segments}
                    for seg_id, anchor in label_anchors(points).items():
                        self.server.scene.add_label(
                            f"/labels/segment_{seg_id}", names.get(seg_id, str(seg_id)), position=anchor
                        )

    def _draw_cameras(self) -> None:
        with self._lock:
            scene = self._scene
            if scene is None:
                return
            with self.server.atomic():
                self.server.scene.remove_by_name("/cameras")
                if not self.show_poses.value:
                    return
                for i in range(scene.num_views):
                    h, w = scene.images[i].shape[:2]
                    pose = scene.cam_to_world[i]
                    self.server.scene.add_camera_frustum(
                        f"/cameras/view_{i}",
                        fov=vertical_fov(h, float(scene.focal[i])),
                        aspect=w / h,
                        scale=0.1 * self.camera_size.value,
                        image=thumbnail(scene.images[i]),
                        wxyz=vtf.SO3.from_matrix(pose[:3, :3].astype(np.float64)).wxyz,
                        position=pose[:3, 3],
                    )

    # -- camera animation and lifetime

    def _animate(self) -> None:
        angle = 0.0
        while not self._stop.is_set():
            fps = max(1.0, float(self.anim_fps.value))
            self._stop.wait(1.0 / fps)
            if self.animate is None or not self.animate.value:
                continue
            home = self._home_camera()
            if home is None:
                continue
            center = home[1]
            angle += float(self.anim_speed.value) / fps
            radius = float(self.anim_radius.value)
            # Orbit in the x-z plane since the scene's up axis is -y.
            position = center + radius * np.array([np.sin(angle), 0.0, -np.cos(angle)])
            for client in self.server.get_clients().values():
                client.camera.position, client.camera.look_at = position, center

    def close(self) -> None:
        """Stop the server and its threads; the port is free afterwards."""
        self._stop.set()
        if self._animation_thread is not None:
            self._animation_thread.join(timeout=2.0)
        self.server.stop()
