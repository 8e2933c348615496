"""`generate_dataset`: synthetic indoor scenes written in the ScanNet++ v2 layout plus a pairs folder.

Deterministic: every scene draws from its own numpy Generator seeded with (seed, scene index), and the
10-hex scene ids are derived from the seed, so the same arguments give byte-identical files.
Each scene is written under a temporary name and renamed into place in one step.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from datasets.scannetpp.pairs import scene_pairs_path, write_selected_pairs
from datasets.synthetic.covisibility import View, overlap_matrix, point_tracks, select_pairs
from datasets.synthetic.fisheye import DistortionWarp, make_warp, warp_image
from datasets.synthetic.geometry import combine, densify, rotation_z
from datasets.synthetic.layout import build_layout
from datasets.synthetic.lens import Lens
from datasets.synthetic.lighting import bake
from datasets.synthetic.render import SceneRenderer
from datasets.synthetic.trajectory import scan_path
from datasets.synthetic.writer import Frame, SyntheticScene, write_metadata, write_scene, write_splits

logger = logging.getLogger(__name__)

REAL_DSLR_SIZE = (1752, 1168)
REAL_IPHONE_SIZE = (1920, 1440)
DSLR_CAMERA_MODELS = ("OPENCV_FISHEYE", "OPENCV")
DEFAULT_DSLR_FOCAL_RANGE = (0.58, 0.64)
"""DSLR lens focal length as a fraction of the image width, drawn per scene: a narrow band around the real
ScanNet++ DSLR's, so that every scene looks alike (a model can learn the focal as a constant)."""
MIN_DSLR_FOCAL, MAX_DSLR_FOCAL = 0.5, 2.0
"""Bounds of a focal range: below half the width the fisheye's corners lie beyond ~70 degrees off axis,
where the undistorted pinhole image grows without bound."""

# Named settings of `panst3r synth --preset`; explicit flags override single values.
PRESETS: dict[str, dict] = {
    "default": {"frames": 24, "image_size": (876, 584), "mesh_faces": 0, "objects": 0},
    # A ScanNet++ v2 DSLR scene: full-size fisheye frames, a long scan, a dense mesh, hundreds of objects.
    "scannetpp": {"frames": 150, "image_size": REAL_DSLR_SIZE, "mesh_faces": 250_000, "objects": 200},
}


@dataclass(frozen=True)
class SynthConfig:
    """Settings of the generator."""

    num_scenes: int = 2
    """Number of scenes to write."""
    seed: int = 0
    """Seed of everything: the same seed gives byte-identical output."""
    frames: int = 24
    """DSLR frames per scene."""
    image_size: tuple[int, int] = (876, 584)
    """DSLR image (width, height); half of the real 1752x1168 by default."""
    iphone: bool = False
    """Also write iPhone frames (OPENCV lens, 4:3, scaled like the DSLR size) and select them in the pairs."""
    iphone_frames: int = 0
    """iPhone frames per scene when `iphone`; 0 = half the DSLR count (at least 2)."""
    anon_every: int = 0
    """Blank a small region of the anonymisation mask (and blur the image there) in every n-th frame; 0 = never."""
    min_pair_overlap: float = 0.3
    """Pairs need at least this mutual co-visibility (min of both directions)."""
    mesh_resolution: float = 0.06
    """Largest edge of the mesh grid cells in metres."""
    test_every: int = 8
    """Every n-th DSLR frame is listed as a test frame in train_test_lists.json / transforms.json."""
    mesh_faces: int = 0
    """Subdivide the coarsest objects until the scene mesh has at least this many faces (0 = as built,
    about 110k-150k). The room, its objects, colours and cameras stay the same; only density changes."""
    objects: int = 0
    """Add clutter (wall shelves, small things on walls and supports) until the scene has at least this many
    annotated objects (segGroups) where space allows; 0 = the base room's 20-45."""
    camera_model: str = "OPENCV_FISHEYE"
    """COLMAP model of the DSLR: OPENCV_FISHEYE (k1 k2 k3 k4, the real ScanNet++ DSLR) or OPENCV
    (k1 k2 p1 p2)."""
    dslr_focal_range: tuple[float, float] = DEFAULT_DSLR_FOCAL_RANGE
    """(low, high): each scene's DSLR focal length is width x uniform(low, high). A wide range makes the
    focal length something a model must read from the images (3-D pretraining); only the value drawn
    changes, not the draws that follow, so a scene keeps its room, objects and path."""

    def validate(self) -> None:
        if self.num_scenes < 1:
            raise ValueError(f"--scenes must be at least 1, got {self.num_scenes}")
        if self.frames < 2:
            raise ValueError(f"--frames must be at least 2 (pairs need two views), got {self.frames}")
        width, height = self.image_size
        if width < 64 or height < 48:
            raise ValueError(f"--image-size must be at least 64 48, got {width} {height}")
        if self.anon_every < 0:
            raise ValueError(f"anon_every must be >= 0, got {self.anon_every}")
        if self.mesh_faces < 0:
            raise ValueError(f"--mesh-faces must be >= 0, got {self.mesh_faces}")
        if self.objects < 0:
            raise ValueError(f"--objects must be >= 0, got {self.objects}")
        if self.camera_model not in DSLR_CAMERA_MODELS:
            raise ValueError(
                f"--camera-model must be one of {', '.join(DSLR_CAMERA_MODELS)}, got {self.camera_model!r}"
            )
        low, high = self.dslr_focal_range
        if not MIN_DSLR_FOCAL <= low <= high <= MAX_DSLR_FOCAL:
            raise ValueError(
                f"--dslr-focal-range must satisfy {MIN_DSLR_FOCAL} <= LOW <= HIGH <= {MAX_DSLR_FOCAL} (fractions "
                f"of the image width; a shorter focal gives the fisheye a view no pinhole image covers), "
                f"got {low} {high}"
            )


def scene_ids(seed: int, count: int) -> list[str]:
    """Distinct 10-hex-digit scene ids derived from the seed."""
    ids: list[str] = []
    index = 0
    while len(ids) < count:
        candidate = hashlib.sha256(f"panst3r-synth:{seed}:{index}".encode()).hexdigest()[:10]
        if candidate not in ids:
            ids.append(candidate)
        index += 1
    return ids


def split_scenes(ids: list[str]) -> tuple[list[str], list[str]]:
    """About one scene in four goes to validation, and at least one as soon as there are two scenes."""
    val = [s for k, s in enumerate(ids) if k % 4 == 3]
    if len(ids) >= 2 and not val:
        val = [ids[-1]]
    return [s for s in ids if s not in val], val


def _dslr_lens(
    rng: np.random.Generator,
    size: tuple[int, int],
    model: str = "OPENCV_FISHEYE",
    focal_range: tuple[float, float] = DEFAULT_DSLR_FOCAL_RANGE,
) -> Lens:
    width, height = size
    focal = width * rng.uniform(*focal_range)
    params = [
        focal,
        focal * (1 + rng.uniform(-0.002, 0.002)),
        width / 2 + rng.uniform(-0.01, 0.01) * width,
        height / 2 + rng.uniform(-0.01, 0.01) * height,
        rng.uniform(-0.04, 0.04),
        rng.uniform(-0.01, 0.01),
        rng.uniform(-0.002, 0.002),
        rng.uniform(-0.0005, 0.0005),
    ]
    params = [round(float(p), 6) for p in params]
    if model == "OPENCV":  # same draws (same room and path), radial k1 k2 and small tangential p1 p2
        params[6:] = [round(p / 10, 6) for p in params[6:]]
    return Lens(model, width, height, *params[:4], tuple(params[4:]))


def _iphone_lens(rng: np.random.Generator, dslr_size: tuple[int, int]) -> Lens:
    scale = dslr_size[0] / REAL_DSLR_SIZE[0]
    width, height = (int(round(s * scale / 2)) * 2 for s in REAL_IPHONE_SIZE)
    focal = width * rng.uniform(0.74, 0.78)
    params = [
        focal,
        focal,
        width / 2 + rng.uniform(-0.005, 0.005) * width,
        height / 2 + rng.uniform(-0.005, 0.005) * height,
        rng.uniform(-0.03, 0.03),
        rng.uniform(-0.01, 0.01),
        rng.uniform(-0.0005, 0.0005),
        rng.uniform(-0.0005, 0.0005),
    ]
    params = [round(float(p), 6) for p in params]
    return Lens("OPENCV", width, height, *params[:4], tuple(params[4:]))


def _anonymise(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Blank an ellipse of the mask (0 = anonymised) and blur the image there, like a hidden face."""
    height, width = rgb.shape[:2]
    mask = np.full((height, width), 255, np.uint8)
    centre = (int(rng.uniform(0.2, 0.8) * width), int(rng.uniform(0.2, 0.8) * height))
    axes = (max(3, int(rng.uniform(0.04, 0.08) * width)), max(3, int(rng.uniform(0.05, 0.1) * height)))
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 0, -1)
    blurred = cv2.GaussianBlur(rgb, (0, 0), sigmaX=max(2.0, width / 80))
    rgb = np.where(mask[..., None] == 0, blurred, rgb)
    return rgb, mask


def _render_frame(renderer: SceneRenderer, warp: DistortionWarp, cam_to_world: np.ndarray):
    rgb, depth = renderer.render(warp.pinhole_intrinsics, *warp.pinhole_size, cam_to_world)
    # A slight blur stands in for the optics and for the missing anti-aliasing.
    rgb = cv2.GaussianBlur(rgb, (3, 3), 0.6)
    return warp_image(rgb, warp), warp_image(depth, warp, nearest=True)


def build_scene(config: SynthConfig, index: int, scene_id: str) -> SyntheticScene:
    """Build and render one scene in memory."""
    rng = np.random.default_rng([config.seed, index])
    layout = build_layout(rng, config.mesh_resolution, config.objects)
    if config.mesh_faces:
        densify(layout.objects, config.mesh_faces)
    mesh = combine(layout.objects)
    lamps = np.array(
        [o.position + [0.0, 0.0, -0.25] for o in layout.objects if o.class_name == "ceiling lamp"]
    )
    mesh.colors = bake(mesh.vertices.astype(np.float64), mesh.faces, mesh.colors, lamps.reshape(-1, 3))

    # The room is built axis-aligned at the origin; a real scan's frame is arbitrary up to a z rotation.
    world = np.eye(4)
    world[:3, :3] = rotation_z(rng.uniform(0, 2 * np.pi))
    world[:2, 3] = rng.uniform(-2.0, 2.0, 2)
    room_vertices = mesh.vertices.astype(np.float64)
    mesh.vertices = (room_vertices @ world[:3, :3].T + world[:3, 3]).astype(np.float32)
    for obj in mesh.objects:
        obj.vertices = obj.vertices @ world[:3, :3].T + world[:3, 3]
        obj.position = world[:3, :3] @ obj.position + world[:3, 3]
        obj.yaw = float(obj.yaw + np.arctan2(world[1, 0], world[0, 0]))

    dslr_lens = _dslr_lens(rng, config.image_size, config.camera_model, config.dslr_focal_range)
    iphone_lens = _iphone_lens(rng, config.image_size) if config.iphone else None
    dslr_poses = [world @ pose for pose in scan_path(layout, rng, config.frames)]
    iphone_count = (config.iphone_frames or max(2, config.frames // 2)) if config.iphone else 0
    iphone_poses = [
        world @ pose for pose in scan_path(layout, rng, iphone_count, height=(1.2, 1.5), coverage=(0.5, 0.8))
    ]

    renderer = SceneRenderer(mesh.vertices, mesh.faces, mesh.colors)
    frames: list[Frame] = []
    first_dsc = int(rng.integers(100, 9000))
    steps = rng.integers(1, 4, size=config.frames)
    warp = make_warp(dslr_lens, focal_scale=0.85)
    for k, pose in enumerate(dslr_poses):
        rgb, depth = _render_frame(renderer, warp, pose)
        mask = np.full(rgb.shape[:2], 255, np.uint8)
        if config.anon_every and k % config.anon_every == config.anon_every - 1:
            rgb, mask = _anonymise(rgb, rng)
        frames.append(Frame(f"DSC{first_dsc + int(steps[:k].sum()):05d}", "dslr", pose, rgb, mask, depth))
    if iphone_lens is not None:
        warp = make_warp(iphone_lens)
        for k, pose in enumerate(iphone_poses):
            rgb, depth = _render_frame(renderer, warp, pose)
            mask = np.full(rgb.shape[:2], 255, np.uint8)
            frames.append(Frame(f"frame_{10 * k:06d}", "iphone", pose, rgb, mask, depth))

    lenses = {"dslr": dslr_lens, "iphone": iphone_lens}
    views = [View(lenses[f.device], f.cam_to_world, f.depth) for f in frames]
    pairs = select_pairs(overlap_matrix(views), config.min_pair_overlap)
    tracks = {}
    for device in ("dslr", "iphone"):
        device_views = [v for v, f in zip(views, frames) if f.device == device]
        if device_views:
            tracks[device] = point_tracks(device_views, rng)
    test_names = {
        f.name
        for k, f in enumerate(frames[: config.frames])
        if k % config.test_every == config.test_every - 1
    }
    return SyntheticScene(scene_id, mesh, dslr_lens, iphone_lens, frames, pairs, tracks, test_names)


def generate_dataset(
    out_root: str | Path,
    num_scenes: int,
    seed: int,
    frames: int = 24,
    image_size: tuple[int, int] = (876, 584),
    iphone: bool = False,
    pairs_dir: str | Path | None = None,
    anon_every: int = 0,
    on_scene: Callable[[str, int, int], None] | None = None,
    mesh_faces: int = 0,
    objects: int = 0,
    camera_model: str = "OPENCV_FISHEYE",
    dslr_focal_range: tuple[float, float] = DEFAULT_DSLR_FOCAL_RANGE,
) -> list[str]:
    """Write `num_scenes` scenes under out_root/data, the metadata and splits, and the pairs folder
    (default out_root/pairs). Returns the scene ids. `on_scene(scene_id, done, total)` reports progress.
    `mesh_faces`, `objects`, `camera_model` and `dslr_focal_range` are the SynthConfig fields of the same
    names."""
    config = SynthConfig(
        num_scenes=num_scenes,
        seed=seed,
        frames=frames,
        image_size=tuple(int(v) for v in image_size),
        iphone=iphone,
        anon_every=anon_every,
        mesh_faces=mesh_faces,
        objects=objects,
        camera_model=camera_model,
        dslr_focal_range=tuple(float(v) for v in dslr_focal_range),
    )
    config.validate()
    root = Path(out_root)
    pairs_root = Path(pairs_dir) if pairs_dir is not None else root / "pairs"
    (root / "data").mkdir(parents=True, exist_ok=True)
    write_metadata(root)
    ids = scene_ids(seed, num_scenes)
    write_splits(root, *split_scenes(ids))
    for index, scene_id in enumerate(ids):
        generate_scene(config, index, scene_id, root, pairs_root)
        if on_scene is not None:
            on_scene(scene_id, index + 1, num_scenes)
    return ids


def generate_scene(config: SynthConfig, index: int, scene_id: str, root: Path, pairs_root: Path) -> None:
    """Render scene `index` and write it to root/data/<scene_id> (under a temporary name, then one rename:
    a killed run leaves no half scene) and its pairs into the pairs folder pairs_root. Any
    process can run it (one scene per process generates a dataset in parallel)."""
    scene = build_scene(config, index, scene_id)
    final = root / "data" / scene_id
    staging = root / "data" / f".{scene_id}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    write_scene(staging, scene)
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    write_selected_pairs(scene_pairs_path(pairs_root, scene_id), [f.name for f in scene.frames], scene.pairs)
    logger.debug("scene %s: %d frames, %d pairs", scene_id, len(scene.frames), len(scene.pairs))
