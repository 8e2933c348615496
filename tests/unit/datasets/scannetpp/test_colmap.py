"""COLMAP text model round trips, quaternion conventions, official-parser layout and malformed input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from datasets.scannetpp import colmap
from datasets.scannetpp.record import CameraModel


def _random_pose(rng):
    pose = np.eye(4)
    pose[:3, :3] = Rotation.from_rotvec(rng.normal(size=3) * 2).as_matrix()
    pose[:3, 3] = rng.normal(size=3)
    return pose


def test_quaternion_round_trip_and_scipy_agreement():
    rng = np.random.default_rng(0)
    for _ in range(50):
        rotation = Rotation.from_rotvec(rng.normal(size=3) * 3).as_matrix()
        q = colmap.rotation_to_quaternion(rotation)
        assert q[0] >= 0 and np.isclose(np.linalg.norm(q), 1)
        np.testing.assert_allclose(colmap.quaternion_to_rotation(q), rotation, atol=1e-12)
        # The official parser builds the rotation with scipy from (qx, qy, qz, qw).
        np.testing.assert_allclose(Rotation.from_quat(q[[1, 2, 3, 0]]).as_matrix(), rotation, atol=1e-12)
    # 180-degree rotations are where naive trace-based formulas break down.
    flip = np.diag([1.0, -1.0, -1.0])
    np.testing.assert_allclose(
        colmap.quaternion_to_rotation(colmap.rotation_to_quaternion(flip)), flip, atol=1e-12
    )


def test_cam_to_world_is_inverse_of_stored_world_to_cam():
    rng = np.random.default_rng(1)
    cam_to_world = _random_pose(rng)
    q, t = colmap.qt_from_cam_to_world(cam_to_world)
    image = colmap.ColmapImage(1, tuple(q), tuple(t), 1, "DSC00001.JPG")
    np.testing.assert_allclose(image.cam_to_world, cam_to_world, atol=1e-12)
    centre = cam_to_world[:3, 3]
    np.testing.assert_allclose((image.world_to_cam @ np.append(centre, 1))[:3], 0, atol=1e-12)


def test_round_trip_and_exact_header_layout(tmp_path):
    rng = np.random.default_rng(2)
    cameras = {
        1: CameraModel("OPENCV_FISHEYE", 1752, 1168, (789.5, 790.25, 876.0, 584.0, 0.01, -0.002, 0.0, 0.0))
    }
    images = []
    for k in range(3):
        q, t = colmap.qt_from_cam_to_world(_random_pose(rng))
        points = np.array([[10.5, 20.25, 7], [1.0, 2.0, 8]]) if k == 1 else np.zeros((0, 3))
        images.append(colmap.ColmapImage(k + 1, tuple(q), tuple(t), 1, f"DSC{k:05d}.JPG", points))
    points3d = [
        colmap.ColmapPoint3D(7, (0.1, 0.2, 0.3), (255, 0, 10), 0.5, ((2, 0),)),
        colmap.ColmapPoint3D(8, (1.0, 2.0, 3.0), (1, 2, 3), 0.25, ((2, 1),)),
    ]
    colmap.write_cameras(tmp_path / "cameras.txt", cameras)
    colmap.write_images(tmp_path / "images.txt", images)
    colmap.write_points3d(tmp_path / "points3D.txt", points3d)

    assert colmap.read_cameras(tmp_path / "cameras.txt") == cameras
    read = colmap.read_images(tmp_path / "images.txt")
    assert [im.name for im in read.values()] == ["DSC00000.JPG", "DSC00001.JPG", "DSC00002.JPG"]
    for original, loaded in zip(images, read.values()):
        assert loaded.qvec == original.qvec and loaded.tvec == original.tvec  # exact float text
        np.testing.assert_array_equal(loaded.points2d, original.points2d)
    assert colmap.read_points3d(tmp_path / "points3D.txt") == {p.point_id: p for p in points3d}

    # What the official parser assumes: exactly 3 comment lines in cameras.txt, then only cameras;
    # 4 in images.txt, then 2 lines per image (the empty second line kept); no blank line in points3D.
    camera_lines = (tmp_path / "cameras.txt").read_text().splitlines()
    assert [line.startswith("#") for line in camera_lines] == [True] * 3 + [False]
    image_lines = [ln for ln in (tmp_path / "images.txt").read_text().splitlines() if not ln.startswith("#")]
    assert len(image_lines) == 6 and image_lines[1] == "" and image_lines[3] != ""
    assert sum(ln.startswith("#") for ln in (tmp_path / "images.txt").read_text().splitlines()) == 4
    point_lines = (tmp_path / "points3D.txt").read_text().splitlines()
    assert all(line.strip() for line in point_lines) and len(point_lines) == 5


def test_tolerates_comments_blank_lines_and_trailing_blank(tmp_path):
    (tmp_path / "cameras.txt").write_text("# a\n\n# b\n1 PINHOLE 10 8 5 5 5 4\n\n# trailing\n")
    assert colmap.read_cameras(tmp_path / "cameras.txt")[1].model == "PINHOLE"
    (tmp_path / "images.txt").write_text("# header\n1 1 0 0 0 0 0 0 1 iphone/frame_000000.jpg\n\n\n")
    assert colmap.read_images(tmp_path / "images.txt")[1].name == "iphone/frame_000000.jpg"
    (tmp_path / "points3D.txt").write_text("# only a header\n")
    assert colmap.read_points3d(tmp_path / "points3D.txt") == {}


@pytest.mark.parametrize(
    "file_name, text, message",
    [
        ("cameras.txt", "# h\n1 OPENCV_FISHEYE 10 10 1 2 3\n", r"needs 8 parameters"),
        ("cameras.txt", "# h\nx PINHOLE 10 10 1 1 5 5\n", r"line 2: malformed"),
        ("images.txt", "# h\n1 1 0 0 0 0 0 0 1 a.JPG\n\n2 1 0 0 0 0 0 0 1 b.JPG\n", r"line 4.*POINTS2D"),
        ("images.txt", "1 nan 0 0 0 0 0 0 1 a.JPG\n\n", r"line 1: non-finite pose"),
        ("images.txt", "1 1 0 0 0 0 0 0 1 my image.JPG\n\n", r"line 1: malformed.*spaces"),
        ("images.txt", "1 1 0 0 0 0 0 0 1 a.JPG\n1 2\n", r"line 2: malformed"),
        ("points3D.txt", "1 0 0 0 255 255 255 0.1 1\n", r"line 1: malformed"),
    ],
)
def test_malformed_lines_raise_with_file_and_line(tmp_path, file_name, text, message):
    path = tmp_path / file_name
    path.write_text(text)
    reader = {"cameras.txt": colmap.read_cameras, "images.txt": colmap.read_images}.get(
        file_name, colmap.read_points3d
    )
    with pytest.raises(ValueError, match=message) as info:
        reader(path)
    assert file_name in str(info.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="cameras.txt"):
        colmap.read_cameras(tmp_path / "cameras.txt")
