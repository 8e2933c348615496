"""COLMAP text models (`cameras.txt`, `images.txt`, `points3D.txt`) as ScanNet++ ships them.

The writers produce exactly what the official NAVER preprocessing parser accepts: 3 comment lines at the
top of `cameras.txt` (it skips exactly three), 4 in `images.txt` with two lines per image (the second,
possibly empty, holds the POINTS2D triples) and 3 in `points3D.txt` with no blank line. The readers are
more tolerant (comments and blank lines anywhere in cameras/points3D, prefixed image names) and raise a
ValueError naming the file and line for anything malformed.

Poses: `images.txt` stores the world->camera transform (qw qx qy qz tx ty tz) in OpenCV camera axes;
`ColmapImage.cam_to_world` returns its inverse as a 4x4 matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datasets.scannetpp.camera_checks import check_camera
from datasets.scannetpp.record import CameraModel

# Number of parameters per COLMAP camera model (subset that ScanNet++ and common tools use).
MODEL_NUM_PARAMS: dict[str, int] = {
    "SIMPLE_PINHOLE": 3,
    "PINHOLE": 4,
    "SIMPLE_RADIAL": 4,
    "RADIAL": 5,
    "OPENCV": 8,
    "OPENCV_FISHEYE": 8,
    "FULL_OPENCV": 12,
    "SIMPLE_RADIAL_FISHEYE": 4,
    "RADIAL_FISHEYE": 5,
    "THIN_PRISM_FISHEYE": 12,
}


@dataclass(frozen=True)
class ColmapImage:
    """One registered image: world->camera rotation as a unit quaternion (w, x, y, z) and translation."""

    image_id: int
    qvec: tuple[float, float, float, float]
    tvec: tuple[float, float, float]
    camera_id: int
    name: str
    points2d: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # (K, 3): x, y, point3D_id

    @property
    def world_to_cam(self) -> np.ndarray:
        """(4, 4) float64 world->camera, OpenCV camera axes."""
        return pose_from_qt(self.qvec, self.tvec)

    @property
    def cam_to_world(self) -> np.ndarray:
        """(4, 4) float64 camera->world, OpenCV camera axes."""
        return invert_pose(self.world_to_cam)


@dataclass(frozen=True)
class ColmapPoint3D:
    point_id: int
    xyz: tuple[float, float, float]
    rgb: tuple[int, int, int]
    error: float
    track: tuple[tuple[int, int], ...] = ()  # (image_id, point2d_index) pairs


# ----------------------------------------------------------------------------------------------------------
# Quaternions and poses


def quaternion_to_rotation(qvec) -> np.ndarray:
    """(w, x, y, z) -> (3, 3) rotation matrix; the quaternion is normalised first."""
    w, x, y, z = np.asarray(qvec, dtype=np.float64) / np.linalg.norm(qvec)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotation_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """(3, 3) rotation -> unit quaternion (w, x, y, z) with w >= 0 (COLMAP's own convention)."""
    r = np.asarray(rotation, dtype=np.float64)
    # Largest-eigenvector method of the symmetric K matrix: stable for every rotation angle.
    k = (
        np.array(
            [
                [r[0, 0] - r[1, 1] - r[2, 2], 0, 0, 0],
                [r[1, 0] + r[0, 1], r[1, 1] - r[0, 0] - r[2, 2], 0, 0],
                [r[2, 0] + r[0, 2], r[2, 1] + r[1, 2], r[2, 2] - r[0, 0] - r[1, 1], 0],
                [r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1], r[0, 0] + r[1, 1] + r[2, 2]],
            ]
        )
        / 3.0
    )
    eigenvalues, eigenvectors = np.linalg.eigh(k)
    x, y, z, w = eigenvectors[:, np.argmax(eigenvalues)]
    q = np.array([w, x, y, z])
    return -q if q[0] < 0 else q


def pose_from_qt(qvec, tvec) -> np.ndarray:
    """(4, 4) world->camera matrix from a COLMAP quaternion (w, x, y, z) and translation."""
    pose = np.eye(4)
    pose[:3, :3] = quaternion_to_rotation(qvec)
    pose[:3, 3] = np.asarray(tvec, dtype=np.float64)
    return pose


def qt_from_cam_to_world(cam_to_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera->world (4, 4) -> the (qvec, tvec) of its inverse, as stored in images.txt."""
    world_to_cam = invert_pose(cam_to_world)
    return rotation_to_quaternion(world_to_cam[:3, :3]), world_to_cam[:3, 3].copy()


def invert_pose(pose: np.ndarray) -> np.ndarray:
    """Inverse of a rigid (4, 4) transform."""
    pose = np.asarray(pose, dtype=np.float64)
    inverse = np.eye(4)
    inverse[:3, :3] = pose[:3, :3].T
    inverse[:3, 3] = -pose[:3, :3].T @ pose[:3, 3]
    return inverse


# ----------------------------------------------------------------------------------------------------------
# Readers


def _require(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"COLMAP file not found: {path}")
    return path.read_text(encoding="utf-8", errors="replace")


def _fail(path: Path, number: int, line: str, expected: str) -> ValueError:
    return ValueError(f"{path}: line {number}: malformed entry {line.strip()!r}; expected {expected}")


def read_cameras(path: str | Path) -> dict[int, CameraModel]:
    """cameras.txt -> {camera_id: CameraModel}. Comment and blank lines are skipped."""
    path = Path(path)
    cameras: dict[int, CameraModel] = {}
    expected = "CAMERA_ID MODEL WIDTH HEIGHT PARAMS..."
    for number, line in enumerate(_require(path).splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        tokens = line.split()
        try:
            camera_id, model, width, height = int(tokens[0]), tokens[1], int(tokens[2]), int(tokens[3])
            params = tuple(float(t) for t in tokens[4:])
        except (IndexError, ValueError) as exc:
            raise _fail(path, number, line, expected) from exc
        wanted = MODEL_NUM_PARAMS.get(model)
        if wanted is not None and len(params) != wanted:
            raise ValueError(
                f"{path}: line {number}: camera model {model} needs {wanted} parameters, got {len(params)}"
            )
        if camera_id in cameras:
            raise ValueError(f"{path}: line {number}: duplicate CAMERA_ID {camera_id}")
        camera = CameraModel(model=model, width=width, height=height, params=params)
        if wanted is not None:  # an unknown model's parameter layout is unknown: the preprocessing refuses it
            check_camera(camera, f"{path}: line {number}: CAMERA_ID {camera_id}")
        cameras[camera_id] = camera
    return cameras


def read_images(path: str | Path) -> dict[int, ColmapImage]:
    """images.txt -> {image_id: ColmapImage}, in file order.

    Lines starting with '#' are dropped; the rest come in pairs (pose line, POINTS2D line). A trailing
    empty line after the last pair is tolerated."""
    path = Path(path)
    entries = [
        (number, line)
        for number, line in enumerate(_require(path).splitlines(), start=1)
        if not line.lstrip().startswith("#")
    ]
    while entries and len(entries) % 2 == 1 and not entries[-1][1].strip():
        entries.pop()
    if len(entries) % 2 == 1:
        number, line = entries[-1]
        raise ValueError(
            f"{path}: line {number}: image entry without its POINTS2D line; every image needs two lines "
            "(the second may be empty)"
        )
    images: dict[int, ColmapImage] = {}
    expected = "IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME"
    for (number, line), (number2, points_line) in zip(entries[0::2], entries[1::2]):
        tokens = line.split()
        if len(tokens) != 10:
            raise _fail(path, number, line, expected + " (10 tokens; names must not contain spaces)")
        try:
            image_id = int(tokens[0])
            values = [float(t) for t in tokens[1:8]]
            camera_id = int(tokens[8])
        except ValueError as exc:
            raise _fail(path, number, line, expected) from exc
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"{path}: line {number}: non-finite pose values in {line.strip()!r}")
        if np.linalg.norm(values[:4]) < 1e-12:
            raise ValueError(f"{path}: line {number}: zero quaternion in {line.strip()!r}")
        point_tokens = points_line.split()
        if len(point_tokens) % 3:
            raise _fail(path, number2, points_line, "POINTS2D triples X Y POINT3D_ID")
        try:
            points = np.asarray([float(t) for t in point_tokens], dtype=np.float64).reshape(-1, 3)
        except ValueError as exc:
            raise _fail(path, number2, points_line, "POINTS2D triples X Y POINT3D_ID") from exc
        if image_id in images:
            raise ValueError(f"{path}: line {number}: duplicate IMAGE_ID {image_id}")
        images[image_id] = ColmapImage(
            image_id=image_id,
            qvec=tuple(values[:4]),
            tvec=tuple(values[4:7]),
            camera_id=camera_id,
            name=tokens[9],
            points2d=points,
        )
    return images


def read_points3d(path: str | Path) -> dict[int, ColmapPoint3D]:
    """points3D.txt -> {point3D_id: ColmapPoint3D}. Comment and blank lines are skipped."""
    path = Path(path)
    points: dict[int, ColmapPoint3D] = {}
    expected = "POINT3D_ID X Y Z R G B ERROR (IMAGE_ID POINT2D_IDX)..."
    for number, line in enumerate(_require(path).splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        tokens = line.split()
        if len(tokens) < 8 or (len(tokens) - 8) % 2:
            raise _fail(path, number, line, expected)
        try:
            point_id = int(tokens[0])
            xyz = tuple(float(t) for t in tokens[1:4])
            rgb = tuple(int(t) for t in tokens[4:7])
            error = float(tokens[7])
            track_values = [int(t) for t in tokens[8:]]
        except ValueError as exc:
            raise _fail(path, number, line, expected) from exc
        track = tuple(zip(track_values[0::2], track_values[1::2]))
        points[point_id] = ColmapPoint3D(point_id, xyz, rgb, error, track)
    return points


# ----------------------------------------------------------------------------------------------------------
# Writers


def _number(value: float) -> str:
    """Shortest text that reads back to the same float64 (deterministic across runs)."""
    return repr(float(value))


def write_cameras(path: str | Path, cameras: dict[int, CameraModel]) -> None:
    """Write cameras.txt with exactly the 3 header lines the official parser skips."""
    lines = [
        "# Camera list with one line of data per camera:",
        "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
        f"# Number of cameras: {len(cameras)}",
    ]
    for camera_id, camera in cameras.items():
        wanted = MODEL_NUM_PARAMS.get(camera.model)
        if wanted is not None and len(camera.params) != wanted:
            raise ValueError(f"{path}: camera {camera_id} ({camera.model}) needs {wanted} parameters")
        params = " ".join(_number(p) for p in camera.params)
        lines.append(f"{camera_id} {camera.model} {camera.width} {camera.height} {params}")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_images(path: str | Path, images: list[ColmapImage]) -> None:
    """Write images.txt: 4 header lines, then two lines per image (the POINTS2D line may be empty)."""
    total = sum(len(image.points2d) for image in images)
    mean = total / len(images) if images else 0.0
    lines = [
        "# Image list with two lines of data per image:",
        "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
        "#   POINTS2D[] as (X, Y, POINT3D_ID)",
        f"# Number of images: {len(images)}, mean observations per image: {mean:g}",
    ]
    for image in images:
        if " " in image.name or not image.name:
            raise ValueError(f"{path}: image name {image.name!r} must be non-empty and contain no spaces")
        pose = " ".join(_number(v) for v in (*image.qvec, *image.tvec))
        lines.append(f"{image.image_id} {pose} {image.camera_id} {image.name}")
        lines.append(
            " ".join(f"{_number(x)} {_number(y)} {int(pid)}" for x, y, pid in np.asarray(image.points2d))
        )
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_points3d(path: str | Path, points: list[ColmapPoint3D]) -> None:
    """Write points3D.txt: 3 header lines and one line per point, no blank lines."""
    mean = sum(len(p.track) for p in points) / len(points) if points else 0.0
    lines = [
        "# 3D point list with one line of data per point:",
        "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)",
        f"# Number of points: {len(points)}, mean track length: {mean:g}",
    ]
    for point in points:
        xyz = " ".join(_number(v) for v in point.xyz)
        rgb = " ".join(str(int(c)) for c in point.rgb)
        track = " ".join(f"{image_id} {index}" for image_id, index in point.track)
        lines.append(f"{point.point_id} {xyz} {rgb} {_number(point.error)}" + (f" {track}" if track else ""))
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
