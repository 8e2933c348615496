"""Scene listing and `read_scene` on a small hand-written scene, including every bad-input case."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from datasets.scannetpp import colmap
from datasets.scannetpp.pairs import write_selected_pairs
from datasets.scannetpp.ply import write_ply
from datasets.scannetpp.reader import list_scenes, read_scene, strip_image_name
from datasets.scannetpp.record import CameraModel

SCENE = "0123456789"
FISHEYE = CameraModel("OPENCV_FISHEYE", 16, 12, (10.0, 10.0, 8.0, 6.0, 0.0, 0.0, 0.0, 0.0))
IPHONE = CameraModel("OPENCV", 16, 12, (12.0, 12.0, 8.0, 6.0, 0.0, 0.0, 0.0, 0.0))


def _pose(x: float) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, 3] = [x, 0.5, 1.5]
    return pose


def _images(names, poses):
    out = []
    for k, (name, pose) in enumerate(zip(names, poses), start=1):
        q, t = colmap.qt_from_cam_to_world(pose)
        out.append(colmap.ColmapImage(k, tuple(q), tuple(t), 1, name))
    return out


def _write_colmap(folder, camera, images):
    folder.mkdir(parents=True, exist_ok=True)
    colmap.write_cameras(folder / "cameras.txt", {1: camera} if camera else {})
    colmap.write_images(folder / "images.txt", images)
    colmap.write_points3d(folder / "points3D.txt", [])


def _pixels(path, mode):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (16, 12), 255 if mode == "L" else (10, 20, 30)).save(path)


@pytest.fixture
def root(tmp_path):
    scene = tmp_path / "data" / SCENE
    (scene / "scans").mkdir(parents=True)
    write_ply(scene / "scans" / "mesh_aligned_0.05.ply", np.eye(3), np.zeros((3, 3), np.uint8), [[0, 1, 2]])
    (scene / "scans" / "segments.json").write_text(json.dumps({"segIndices": [0, 1, 2]}))
    (scene / "scans" / "segments_anno.json").write_text(json.dumps({"segGroups": []}))
    dslr = ["DSC00002", "DSC00001"]
    _write_colmap(
        scene / "dslr" / "colmap", FISHEYE, _images([n + ".JPG" for n in dslr], [_pose(1), _pose(2)])
    )
    for name in dslr:
        _pixels(scene / "dslr" / "resized_images" / f"{name}.JPG", "RGB")
        _pixels(scene / "dslr" / "resized_anon_masks" / f"{name}.png", "L")
    _write_colmap(scene / "iphone" / "colmap", IPHONE, _images(["video/frame_000003.jpg"], [_pose(3)]))
    _pixels(scene / "iphone" / "rgb" / "frame_000003.jpg", "RGB")
    _pixels(scene / "iphone" / "rgb_masks" / "frame_000003.png", "L")
    bench = tmp_path / "metadata" / "semantic_benchmark"
    bench.mkdir(parents=True)
    for name in ("top100.txt", "top100_instance.txt", "map_benchmark.csv"):
        (bench / name).write_text("wall\n")
    return tmp_path


def test_strip_image_name():
    assert strip_image_name("iphone/frame_000001.jpg") == "frame_000001"
    assert strip_image_name("video/frame_000001.jpg") == "frame_000001"
    assert strip_image_name("DSC01234.JPG") == "DSC01234"


def test_default_selection_is_all_dslr_then_iphone(root):
    record = read_scene(root, SCENE)
    assert [f.name for f in record.frames] == ["DSC00001", "DSC00002", "frame_000003"]
    assert [f.device for f in record.frames] == ["dslr", "dslr", "iphone"]
    np.testing.assert_allclose(record.frames[0].cam_to_world, _pose(2), atol=1e-12)
    assert record.frames[0].camera == FISHEYE and record.frames[2].camera == IPHONE
    assert record.frames[2].image_path.name == "frame_000003.jpg"
    assert record.frames[0].mask_path.name == "DSC00001.png"
    assert record.pairs is None
    assert record.class_list_path is not None and record.mapping_path is not None
    names = {p.name for p in record.source_files}
    assert {
        "mesh_aligned_0.05.ply",
        "segments_anno.json",
        "points3D.txt",
        "DSC00001.JPG",
        "frame_000003.png",
    } <= names
    assert all(p.is_file() for p in record.source_files)
    assert list_scenes(root) == [SCENE]


def test_selection_and_pairs_from_pairs_folder(root):
    pairs_dir = root / "pairs"
    write_selected_pairs(
        pairs_dir / SCENE / "selected_pairs.npz", ["DSC00002", "frame_000003"], [[0, 1, 0.4]]
    )
    record = read_scene(root, SCENE, pairs_dir)
    assert [f.name for f in record.frames] == ["DSC00002", "frame_000003"]
    assert record.pairs.tolist() == [[0, 1, 0.4]]
    assert any(p.name == "selected_pairs.npz" for p in record.source_files)
    assert list_scenes(root, pairs_dir) == [SCENE]


def test_missing_colmap_file(root):
    (root / "data" / SCENE / "dslr" / "colmap" / "points3D.txt").unlink()
    with pytest.raises(FileNotFoundError, match=rf"scene {SCENE}: missing COLMAP file .*points3D\.txt"):
        read_scene(root, SCENE)


def test_nan_pose(root):
    path = root / "data" / SCENE / "dslr" / "colmap" / "images.txt"
    lines = path.read_text().splitlines()
    tokens = lines[4].split()
    tokens[5] = "nan"
    lines[4] = " ".join(tokens)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"scene {SCENE}: .*images\.txt: line 5: non-finite pose"):
        read_scene(root, SCENE)


def test_listed_image_or_mask_missing(root):
    (root / "data" / SCENE / "dslr" / "resized_images" / "DSC00001.JPG").unlink()
    with pytest.raises(FileNotFoundError, match=r"image of selected frame 'DSC00001' not found"):
        read_scene(root, SCENE)
    _pixels(root / "data" / SCENE / "dslr" / "resized_images" / "DSC00001.JPG", "RGB")
    (root / "data" / SCENE / "iphone" / "rgb_masks" / "frame_000003.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"anonymisation mask of selected frame 'frame_000003'"):
        read_scene(root, SCENE)


def test_selection_names_image_not_in_colmap(root):
    write_selected_pairs(root / "pairs" / SCENE / "selected_pairs.npz", ["DSC09999"], np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"'selection' lists 'DSC09999'.*images\.txt"):
        read_scene(root, SCENE, root / "pairs")


def test_empty_scene(root):
    scene = root / "data" / SCENE
    _write_colmap(scene / "dslr" / "colmap", FISHEYE, [])
    shutil.rmtree(scene / "iphone")
    with pytest.raises(ValueError, match=rf"scene {SCENE}: no frames"):
        read_scene(root, SCENE)


def test_missing_scan_files_and_scene(root):
    (root / "data" / SCENE / "scans" / "segments.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"segments\.json"):
        read_scene(root, SCENE)
    with pytest.raises(FileNotFoundError, match="scene folder not found"):
        read_scene(root, "ffffffffff")
    with pytest.raises(FileNotFoundError, match="no 'data' folder"):
        list_scenes(root / "nowhere")


def test_unknown_camera_and_duplicate_names(root):
    folder = root / "data" / SCENE / "dslr" / "colmap"
    colmap.write_cameras(folder / "cameras.txt", {2: FISHEYE})
    with pytest.raises(ValueError, match="CAMERA_ID 1"):
        read_scene(root, SCENE)
    _write_colmap(folder, FISHEYE, _images(["DSC00001.JPG", "DSC00001.JPG"], [_pose(0), _pose(1)]))
    with pytest.raises(ValueError, match="appears twice"):
        read_scene(root, SCENE)
