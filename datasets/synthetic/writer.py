"""Writes one synthetic scene, and the dataset-level metadata, in the exact ScanNet++ v2 layout
(see the checklist in the team's ScanNet++ format notes, section 6)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from datasets.scannetpp import colmap
from datasets.scannetpp.ply import write_ply
from datasets.synthetic.classes import TOP100, TOP100_INSTANCE, mapping_rows, raw_labels
from datasets.synthetic.covisibility import Track
from datasets.synthetic.geometry import SceneMesh, oriented_box
from datasets.synthetic.lens import Lens

JPEG_QUALITY = 92
IPHONE_NAME_PREFIX = "video/"  # the official readers strip "iphone/" and "video/" from iPhone names
# nerfstudio camera->world = NERF_WORLD @ colmap_cam_to_world @ OPENCV_TO_OPENGL (toolkit convention)
NERF_WORLD = np.array([[0.0, 1, 0, 0], [1, 0, 0, 0], [0, 0, -1, 0], [0, 0, 0, 1]])
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass
class Frame:
    """One rendered image: `name` without extension, `device` "dslr" or "iphone"."""

    name: str
    device: str
    cam_to_world: np.ndarray  # (4, 4) OpenCV axes, world frame
    rgb: np.ndarray  # (H, W, 3) uint8
    mask: np.ndarray  # (H, W) uint8, 255 = valid
    depth: np.ndarray  # (H, W) float32 metres (kept in memory for co-visibility; not written)


@dataclass
class SyntheticScene:
    scene_id: str
    mesh: SceneMesh
    dslr_lens: Lens
    iphone_lens: Lens | None
    frames: list[Frame]
    pairs: np.ndarray  # (P, 3) float64 rows (i, j, overlap) indexing `frames`
    tracks: dict[str, list[Track]] = field(default_factory=dict)  # per device; view index within the device
    test_names: set[str] = field(default_factory=set)


def _json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def _save_image(path: Path, array: np.ndarray, jpeg: bool) -> None:
    # Encode in memory first so a crash never leaves half a file under the final name.
    buffer = io.BytesIO()
    if jpeg:
        Image.fromarray(array).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    else:
        Image.fromarray(array).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())


def _file_name(frame: Frame) -> str:
    return f"{frame.name}.JPG" if frame.device == "dslr" else f"{frame.name}.jpg"


def write_metadata(root: Path) -> None:
    """ROOT/metadata: the benchmark class lists, the mapping CSV and the raw vocabularies."""
    bench = root / "metadata" / "semantic_benchmark"
    bench.mkdir(parents=True, exist_ok=True)
    (bench / "top100.txt").write_text("\n".join(TOP100) + "\n", encoding="utf-8")
    (bench / "top100_instance.txt").write_text("\n".join(TOP100_INSTANCE) + "\n", encoding="utf-8")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["class", "count", "semantic_map_to", "instance_map_to"])
    writer.writerows(mapping_rows())
    (bench / "map_benchmark.csv").write_text(buffer.getvalue(), encoding="utf-8")
    (root / "metadata" / "semantic_classes.txt").write_text("\n".join(raw_labels()) + "\n", encoding="utf-8")
    things = [row[0] for row in mapping_rows() if row[3]]
    (root / "metadata" / "instance_classes.txt").write_text(
        "\n".join(sorted(things)) + "\n", encoding="utf-8"
    )


def write_splits(root: Path, train: list[str], val: list[str]) -> None:
    splits = root / "splits"
    splits.mkdir(parents=True, exist_ok=True)
    (splits / "nvs_sem_train.txt").write_text("".join(f"{s}\n" for s in train), encoding="utf-8")
    (splits / "nvs_sem_val.txt").write_text("".join(f"{s}\n" for s in val), encoding="utf-8")


def write_scene(scene_dir: Path, scene: SyntheticScene) -> None:
    """Write every file of one scene under scene_dir (which must not exist yet)."""
    scene_dir.mkdir(parents=True)
    _write_scans(scene_dir / "scans", scene.mesh)
    for device, lens in (("dslr", scene.dslr_lens), ("iphone", scene.iphone_lens)):
        frames = [f for f in scene.frames if f.device == device]
        _write_colmap(scene_dir / device / "colmap", device, lens, frames, scene.tracks.get(device, []))
        if not frames:
            continue
        image_dir, mask_dir = (
            ("resized_images", "resized_anon_masks") if device == "dslr" else ("rgb", "rgb_masks")
        )
        (scene_dir / device / image_dir).mkdir(parents=True)
        (scene_dir / device / mask_dir).mkdir(parents=True)
        for frame in frames:
            _save_image(scene_dir / device / image_dir / _file_name(frame), frame.rgb, jpeg=True)
            _save_image(scene_dir / device / mask_dir / f"{frame.name}.png", frame.mask, jpeg=False)
        _write_transforms(scene_dir / device / "nerfstudio", lens, frames, scene.test_names)
    dslr_names = [_file_name(f) for f in scene.frames if f.device == "dslr"]
    _json(
        scene_dir / "dslr" / "train_test_lists.json",
        {
            "train": [n for n in dslr_names if n[:-4] not in scene.test_names],
            "test": [n for n in dslr_names if n[:-4] in scene.test_names],
        },
    )
    iphone = [f for f in scene.frames if f.device == "iphone"]
    if iphone:
        _json(
            scene_dir / "iphone" / "pose_intrinsic_imu.json",
            {
                f.name: {
                    "aligned_pose": np.round(f.cam_to_world, 9).tolist(),
                    "intrinsic": np.round(scene.iphone_lens.K(), 9).tolist(),
                }
                for f in iphone
            },
        )


def _write_scans(scans: Path, mesh: SceneMesh) -> None:
    scans.mkdir(parents=True)
    write_ply(scans / "mesh_aligned_0.05.ply", mesh.vertices, mesh.colors, mesh.faces)
    vocabulary = {name: i for i, name in enumerate(raw_labels())}
    labels = np.full(len(mesh.vertices), -100, dtype=np.int32)
    groups = []
    for index, (obj, (start, end)) in enumerate(zip(mesh.objects, mesh.vertex_ranges)):
        labels[start:end] = vocabulary.get(obj.label, -100)
        groups.append(
            {
                "id": index,
                "objectId": index,
                "label": obj.label,
                "segments": list(range(start, end)),
                "obb": oriented_box(obj),
            }
        )
    write_ply(
        scans / "mesh_aligned_0.05_semantic.ply", mesh.vertices, mesh.colors, mesh.faces, {"label": labels}
    )
    (scans / "segments.json").write_text(
        json.dumps({"segIndices": list(range(len(mesh.vertices)))}) + "\n", encoding="utf-8"
    )
    (scans / "segments_anno.json").write_text(json.dumps({"segGroups": groups}) + "\n", encoding="utf-8")


def _write_colmap(
    folder: Path, device: str, lens: Lens | None, frames: list[Frame], tracks: list[Track]
) -> None:
    folder.mkdir(parents=True)
    cameras = {1: lens.camera()} if lens is not None and frames else {}
    observations: list[list[tuple[float, float, int]]] = [[] for _ in frames]
    points = []
    for point_id, track in enumerate(tracks, start=1):
        uv = dict(track.observations)[track.source]
        rgb = frames[track.source].rgb[int(uv[1]), int(uv[0])] if frames else (128, 128, 128)
        entries = []
        for view, uv in track.observations:
            entries.append((view + 1, len(observations[view])))
            observations[view].append((float(uv[0]), float(uv[1]), point_id))
        points.append(
            colmap.ColmapPoint3D(
                point_id,
                tuple(round(float(c), 6) for c in track.xyz),
                tuple(int(c) for c in rgb),
                0.5,
                tuple(entries),
            )
        )
    images = []
    for index, frame in enumerate(frames):
        q, t = colmap.qt_from_cam_to_world(frame.cam_to_world)
        name = _file_name(frame) if device == "dslr" else IPHONE_NAME_PREFIX + _file_name(frame)
        points2d = np.round(np.asarray(observations[index], dtype=np.float64).reshape(-1, 3), 4)
        images.append(colmap.ColmapImage(index + 1, tuple(q), tuple(t), 1, name, points2d))
    colmap.write_cameras(folder / "cameras.txt", cameras)
    colmap.write_images(folder / "images.txt", images)
    colmap.write_points3d(folder / "points3D.txt", points)


def _write_transforms(folder: Path, lens: Lens, frames: list[Frame], test_names: set[str]) -> None:
    folder.mkdir(parents=True)
    data = {
        "fl_x": lens.fx,
        "fl_y": lens.fy,
        "cx": lens.cx,
        "cy": lens.cy,
        "w": lens.width,
        "h": lens.height,
        "camera_model": lens.model,
    }
    keys = ("k1", "k2", "k3", "k4") if lens.model == "OPENCV_FISHEYE" else ("k1", "k2", "p1", "p2")
    data.update(dict(zip(keys, lens.dist)))

    def entry(frame: Frame) -> dict:
        matrix = NERF_WORLD @ frame.cam_to_world @ OPENCV_TO_OPENGL
        return {
            "file_path": _file_name(frame),
            "transform_matrix": np.round(matrix, 9).tolist(),
            "mask_path": f"{frame.name}.png",
            "is_bad": False,
        }

    data["frames"] = [entry(f) for f in frames if f.name not in test_names]
    data["test_frames"] = [entry(f) for f in frames if f.name in test_names]
    _json(folder / "transforms.json", data)
