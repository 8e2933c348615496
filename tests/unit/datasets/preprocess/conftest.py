"""A small ScanNet++-layout scene written with the project's own writers, for the preprocessing tests.

A 6 x 5 x 3 m room (walls, floor, ceiling wound to face inwards) with a few boxes (wound outwards), per-vertex
segment groups, fisheye DSLR frames and OPENCV iPhone frames looking at the boxes, anonymisation masks with
a blurred-edge hole in some frames, the benchmark class files with a mapped, a crowd and an unknown label.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from datasets.scannetpp.colmap import (
    ColmapImage,
    qt_from_cam_to_world,
    write_cameras,
    write_images,
    write_points3d,
)
from datasets.scannetpp.pairs import write_selected_pairs
from datasets.scannetpp.ply import write_ply
from datasets.scannetpp.record import CameraModel

SCENE_ID = "0a1b2c3d4e"
CLASSES = ["wall", "ceiling", "floor", "table", "door", "cabinet", "chair", "box"]
THINGS = ["table", "door", "cabinet", "chair", "box"]
MAPPING = [
    ("class", "count", "semantic_map_to", "instance_map_to"),
    ("office desk", "12", "table", "table"),  # raw label -> thing
    ("wall panel", "3", "wall", ""),  # raw label -> stuff
    ("boxes", "4", "box", ""),  # thing without instance target -> crowd
    ("sculpture", "1", "", ""),  # listed without a target -> void
]
DSLR = CameraModel("OPENCV_FISHEYE", 438, 292, (170.0, 171.0, 219.3, 146.2, -0.03, 0.012, -0.004, 0.001))
IPHONE = CameraModel(
    "OPENCV", 1280, 960, (1040.0, 1040.0, 641.6, 478.8, 0.05, -0.03, 0.001, -0.0005)
)  # downscaled


def _subdivided_quad(corners: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n x n grid of a planar quad (corners in order a, b, c, d); faces wound a -> b -> c."""
    s, t = np.meshgrid(np.linspace(0, 1, n + 1), np.linspace(0, 1, n + 1), indexing="ij")
    a, b, c, d = corners
    pts = (1 - s)[..., None] * ((1 - t)[..., None] * a + t[..., None] * d) + s[..., None] * (
        (1 - t)[..., None] * b + t[..., None] * c
    )
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    faces = []
    for i in range(n):
        for j in range(n):
            v00, v10, v11, v01 = idx[i, j], idx[i + 1, j], idx[i + 1, j + 1], idx[i, j + 1]
            faces += [[v00, v10, v11], [v00, v11, v01]]
    return pts.reshape(-1, 3), np.array(faces)


def build_room() -> tuple[np.ndarray, np.ndarray, list[tuple[str, np.ndarray]]]:
    """Vertices, faces and segment groups (label, vertex ids); each part has its own vertices."""
    parts: list[tuple[str, np.ndarray, np.ndarray]] = []
    X, Y, Z = 6.0, 5.0, 3.0
    # Room surfaces, wound so their normals point into the room (z is up).
    quads = {
        "floor": [[0, 0, 0], [0, Y, 0], [X, Y, 0], [X, 0, 0]],
        "ceiling": [[0, 0, Z], [X, 0, Z], [X, Y, Z], [0, Y, Z]],
        "wall_a": [[0, 0, 0], [X, 0, 0], [X, 0, Z], [0, 0, Z]],
        "wall_b": [[X, 0, 0], [X, Y, 0], [X, Y, Z], [X, 0, Z]],
        "wall_c": [[X, Y, 0], [0, Y, 0], [0, Y, Z], [X, Y, Z]],
        "wall_d": [[0, Y, 0], [0, 0, 0], [0, 0, Z], [0, Y, Z]],
    }
    labels = {"floor": "floor", "ceiling": "ceiling", "wall_a": "wall", "wall_b": "wall panel"}
    labels |= {"wall_c": "wall", "wall_d": "wall"}
    for name, corners in quads.items():
        v, f = _subdivided_quad(np.array(corners, float), 6)
        parts.append((labels[name], v, f[:, ::-1]))  # the corners run clockwise seen from inside
    boxes = [
        ("table", (1.2, 0.8, 0.75), (2.0, 2.0, 0.375)),
        ("office desk", (1.0, 0.6, 0.7), (4.2, 3.3, 0.35)),
        ("chair", (0.5, 0.5, 0.9), (3.0, 1.3, 0.45)),
        ("cabinet", (0.6, 0.4, 1.6), (5.5, 4.2, 0.8)),
        ("boxes", (0.5, 0.5, 0.4), (1.0, 3.8, 0.2)),
        ("sculpture", (0.3, 0.3, 0.5), (4.8, 1.0, 0.25)),  # listed without a target -> void
        ("box", (0.35, 0.35, 0.35), (2.0, 2.0, 0.925)),  # on the table
    ]
    for label, extents, centre in boxes:
        box = trimesh.creation.box(extents=extents)
        box = box.subdivide()
        box.apply_translation(centre)
        parts.append((label, np.asarray(box.vertices), np.asarray(box.faces)))
    vertices, faces, groups, offset = [], [], [], 0
    for label, v, f in parts:
        vertices.append(v)
        faces.append(f + offset)
        groups.append((label, np.arange(offset, offset + len(v))))
        offset += len(v)
    return np.concatenate(vertices), np.concatenate(faces), groups


def look_at(eye, target) -> np.ndarray:
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, -1.0])
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x, np.cross(z, x), z], axis=1)
    pose[:3, 3] = eye
    return pose


def _pattern_image(camera: CameraModel, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0 : camera.height, 0 : camera.width]
    base = np.stack(
        [
            128 + 100 * np.sin(u / 17.0 + seed),
            128 + 100 * np.cos(v / 11.0),
            128 + 60 * np.sin((u + v) / 23.0),
        ],
        axis=-1,
    )
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def _mask(camera: CameraModel, frame: int) -> np.ndarray:
    mask = np.full((camera.height, camera.width), 255, np.uint8)
    if frame % 2 == 0:  # an anonymised ellipse ("a face") in every other frame
        v, u = np.mgrid[0 : camera.height, 0 : camera.width]
        inside = ((u - camera.width * 0.3) / (0.09 * camera.width)) ** 2 + (
            (v - camera.height * 0.4) / (0.1 * camera.height)
        ) ** 2 < 1
        mask[inside] = 0
    return mask


def write_scene(root: Path, pairs_dir: Path | None, n_dslr: int = 6, n_iphone: int = 2) -> list[str]:
    """Write the scene; returns the selection (DSLR names first, then iPhone)."""
    scene = root / "data" / SCENE_ID
    for sub in ("scans", "dslr/colmap", "dslr/resized_images", "dslr/resized_anon_masks", "iphone/colmap"):
        (scene / sub).mkdir(parents=True, exist_ok=True)
    (scene / "iphone/rgb").mkdir(exist_ok=True)
    (scene / "iphone/rgb_masks").mkdir(exist_ok=True)
    meta = root / "metadata" / "semantic_benchmark"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "top100.txt").write_text("\n".join(CLASSES) + "\n")
    (meta / "top100_instance.txt").write_text("\n".join(THINGS) + "\n")
    (meta / "map_benchmark.csv").write_text("\n".join(",".join(r) for r in MAPPING) + "\n")

    vertices, faces, groups = build_room()
    colors = np.full((len(vertices), 3), 180, np.uint8)
    write_ply(scene / "scans/mesh_aligned_0.05.ply", vertices, colors, faces)
    (scene / "scans/segments.json").write_text(json.dumps({"segIndices": list(range(len(vertices)))}))
    seg_groups = [
        {"id": i, "objectId": i, "label": label, "segments": ids.tolist(), "obb": {}}
        for i, (label, ids) in enumerate(groups)
    ]
    (scene / "scans/segments_anno.json").write_text(json.dumps({"segGroups": seg_groups}))

    targets = [
        (2.0, 2.0, 0.8),
        (4.2, 3.3, 0.6),
        (3.0, 1.3, 0.6),
        (5.5, 4.2, 0.9),
        (1.0, 3.8, 0.3),
        (3.0, 2.5, 0.5),
    ]
    names, selection = {"dslr": [], "iphone": []}, []
    for device, camera, count, folder in (
        ("dslr", DSLR, n_dslr, "dslr"),
        ("iphone", IPHONE, n_iphone, "iphone"),
    ):
        images = []
        for k in range(count):
            angle = 2 * np.pi * (k + 0.5 * (device == "iphone")) / max(count, 1)
            eye = (3.0 + 1.8 * np.cos(angle), 2.5 + 1.5 * np.sin(angle), 1.5 + 0.2 * np.sin(3 * angle))
            pose = look_at(eye, targets[k % len(targets)])
            qvec, tvec = qt_from_cam_to_world(pose)
            if device == "dslr":
                name, stem = f"DSC{1000 + k:05d}.JPG", f"DSC{1000 + k:05d}"
                image_path = scene / "dslr/resized_images" / name
                mask_path = scene / "dslr/resized_anon_masks" / f"{stem}.png"
            else:
                stem = f"frame_{10 * k:06d}"
                name = f"iphone/{stem}.jpg"
                image_path = scene / "iphone/rgb" / f"{stem}.jpg"
                mask_path = scene / "iphone/rgb_masks" / f"{stem}.png"
            images.append(ColmapImage(k + 1, tuple(qvec), tuple(tvec), 1, name))
            Image.fromarray(_pattern_image(camera, 7 * k + (device == "iphone"))).save(image_path, quality=95)
            Image.fromarray(_mask(camera, k)).save(mask_path)
            names[device].append(stem)
        write_cameras(scene / folder / "colmap/cameras.txt", {1: camera} if count else {})
        write_images(scene / folder / "colmap/images.txt", images)
        write_points3d(scene / folder / "colmap/points3D.txt", [])
    selection = names["dslr"] + names["iphone"]
    if pairs_dir is not None:
        n = len(selection)
        pairs = np.array([[a, b, 0.5] for a in range(n) for b in range(a + 1, n) if b - a <= 2], float)
        write_selected_pairs(pairs_dir / SCENE_ID / "selected_pairs.npz", selection, pairs)
    return selection


@pytest.fixture(scope="session")
def mini_scene(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """(root, pairs_dir, selection) of the small scene described in the module docstring."""
    base = tmp_path_factory.mktemp("mini_scannetpp")
    root, pairs_dir = base / "root", base / "pairs"
    selection = write_scene(root, pairs_dir)
    return root, pairs_dir, selection
