"""The generated dataset: complete ScanNet++ v2 layout (checklist of the format notes, section 6), readable
by our reader with the exact formats the official scripts need, and byte-identical for a given seed."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import trimesh
from PIL import Image

from datasets.scannetpp import colmap
from datasets.scannetpp.pairs import read_selected_pairs
from datasets.scannetpp.ply import read_ply
from datasets.scannetpp.reader import list_scenes, read_scene
from datasets.scannetpp.semantics import load_label_map, read_vertex_panoptic_ids
from datasets.synthetic.classes import TOP100
from datasets.synthetic.generate import SynthConfig, generate_dataset, scene_ids, split_scenes


def _tree(root):
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            files[os.path.relpath(path, root)] = open(path, "rb").read()
    return files


def test_checklist_layout(synthetic_root):
    # Long on purpose: it walks the layout checklist of scannetpp_format.md item by item (the numbered
    # comments), so that the list can be ticked off against one place.
    root = synthetic_root
    scenes = list_scenes(root)
    assert scenes == sorted(scene_ids(0, 2)) and all(len(s) == 10 and int(s, 16) >= 0 for s in scenes)
    # 8: metadata
    bench = root / "metadata" / "semantic_benchmark"
    assert (bench / "top100.txt").read_text().splitlines() == list(TOP100)
    assert not (bench / "top100.txt").read_text().endswith("\n\n")
    assert len((bench / "top100_instance.txt").read_text().splitlines()) == 84
    assert (bench / "map_benchmark.csv").read_text().splitlines()[
        0
    ] == "class,count,semantic_map_to,instance_map_to"
    # 9: splits
    train = (root / "splits" / "nvs_sem_train.txt").read_text().split()
    val = (root / "splits" / "nvs_sem_val.txt").read_text().split()
    assert sorted(train + val) == scenes and len(val) == 1
    # 10: pairs folder holds scene folders only
    assert sorted(p.name for p in (root / "pairs").iterdir()) == scenes
    label_map = load_label_map(
        bench / "top100.txt", bench / "top100_instance.txt", bench / "map_benchmark.csv"
    )

    for scene_id in scenes:
        scene = root / "data" / scene_id
        # 1: directories
        for sub in ("scans", "dslr", "iphone"):
            assert (scene / sub).is_dir()
        # 2-4: mesh, one segment per vertex, non-empty groups with known labels
        mesh = read_ply(scene / "scans" / "mesh_aligned_0.05.ply")
        official = trimesh.load(
            scene / "scans" / "mesh_aligned_0.05.ply", process=False
        )  # as PanSt3R loads it
        assert len(official.vertices) == mesh.num_vertices and len(official.faces) == len(mesh.faces)
        np.testing.assert_array_equal(official.visual.vertex_colors[:, :3], mesh.colors)
        header = (scene / "scans" / "mesh_aligned_0.05.ply").read_bytes().split(b"end_header")[0]
        assert b"binary_little_endian" in header and b"property list uchar int vertex_indices" in header
        segments = json.loads((scene / "scans" / "segments.json").read_text())
        assert segments["segIndices"] == list(range(mesh.num_vertices))
        groups = json.loads((scene / "scans" / "segments_anno.json").read_text())["segGroups"]
        covered = np.zeros(mesh.num_vertices, dtype=int)
        for group in groups:
            assert set(group) == {"id", "objectId", "label", "segments", "obb"}
            assert group["segments"], group["label"]
            assert group["label"] in label_map.label_to_class or group["label"] == "object"
            covered[group["segments"]] += 1
            assert set(group["obb"]) == {"centroid", "axesLengths", "normalizedAxes"}
        assert np.all(covered == 1)  # every vertex belongs to exactly one object
        labels = read_vertex_panoptic_ids(
            scene / "scans" / "segments.json",
            scene / "scans" / "segments_anno.json",
            label_map,
            mesh.num_vertices,
        )
        pan, kept = labels.pan_ids, labels.segments
        assert labels.unknown_vertices == {}  # the generator's CSV covers every label it writes
        face_ids = pan[mesh.faces]
        assert np.all(face_ids[:, 0] == face_ids[:, 2]) and np.all(face_ids[:, 1] == face_ids[:, 2])
        assert {TOP100[s["class_id"]] for s in kept} >= {"wall", "floor", "ceiling"}
        semantic = read_ply(scene / "scans" / "mesh_aligned_0.05_semantic.ply")
        assert semantic.vertex_properties["label"].dtype == np.int32
        # 5: COLMAP files with the exact header line counts
        cam_lines = (scene / "dslr" / "colmap" / "cameras.txt").read_text().splitlines()
        assert [line.startswith("#") for line in cam_lines] == [True, True, True, False]
        assert (
            cam_lines[3].split()[1:4] == ["OPENCV_FISHEYE", "292", "195"] and len(cam_lines[3].split()) == 12
        )
        image_lines = (scene / "dslr" / "colmap" / "images.txt").read_text().splitlines()
        assert sum(line.startswith("#") for line in image_lines[:4]) == 4
        assert len([ln for ln in image_lines if not ln.startswith("#")]) == 2 * 6
        points = colmap.read_points3d(scene / "dslr" / "colmap" / "points3D.txt")
        assert points and "" not in (scene / "dslr" / "colmap" / "points3D.txt").read_text().splitlines()
        images = colmap.read_images(scene / "dslr" / "colmap" / "images.txt")
        for point in list(points.values())[:20]:  # tracks point back at the right observations
            for image_id, index in point.track:
                assert images[image_id].points2d[index, 2] == point.point_id
        # 6: images and masks
        record = read_scene(root, scene_id, root / "pairs")
        assert len(record.frames) == 6 and all(f.name.startswith("DSC") for f in record.frames)
        for frame in record.frames:
            with Image.open(frame.image_path) as image:
                assert image.format == "JPEG" and image.mode == "RGB" and image.size == (292, 195)
            with Image.open(frame.mask_path) as mask:
                assert mask.mode == "L" and mask.size == (292, 195)
                assert np.all(np.asarray(mask) == 255)
        # 7: iPhone colmap exists, header-only
        for name in ("cameras.txt", "images.txt", "points3D.txt"):
            assert all(
                ln.startswith("#") for ln in (scene / "iphone" / "colmap" / name).read_text().splitlines()
            )
        # 10: pairs
        with np.load(root / "pairs" / scene_id / "selected_pairs.npz", allow_pickle=False) as data:
            assert data["selection"].dtype.kind == "U" and data["pairs"].dtype == np.float64
            assert data["pairs"].shape[1] == 3 and len(data["pairs"]) >= 5
        # 11: optional files
        transforms = json.loads((scene / "dslr" / "nerfstudio" / "transforms.json").read_text())
        assert transforms["camera_model"] == "OPENCV_FISHEYE" and {"k1", "k2", "k3", "k4"} <= set(transforms)
        lists = json.loads((scene / "dslr" / "train_test_lists.json").read_text())
        assert sorted(lists["train"] + lists["test"]) == sorted(f.name + ".JPG" for f in record.frames)
        assert len(transforms["frames"]) == len(lists["train"])


def test_nerfstudio_pose_convention_matches_colmap(synthetic_root):
    scene_id = list_scenes(synthetic_root)[0]
    record = read_scene(synthetic_root, scene_id)
    transforms = json.loads((record.scene_dir / "dslr" / "nerfstudio" / "transforms.json").read_text())
    by_name = {f["file_path"][:-4]: np.array(f["transform_matrix"]) for f in transforms["frames"]}
    M = np.array([[0.0, 1, 0, 0], [1, 0, 0, 0], [0, 0, -1, 0], [0, 0, 0, 1]])
    F = np.diag([1.0, -1, -1, 1])
    for frame in record.frames:
        if frame.name in by_name:
            np.testing.assert_allclose(M.T @ by_name[frame.name] @ F, frame.cam_to_world, atol=1e-7)


def test_pairs_come_from_real_covisibility(synthetic_root):
    scene_id = list_scenes(synthetic_root)[0]
    selection, pairs = read_selected_pairs(synthetic_root / "pairs" / scene_id / "selected_pairs.npz")
    record = read_scene(synthetic_root, scene_id)
    centres = {f.name: f.cam_to_world[:3, 3] for f in record.frames}
    forward = {f.name: f.cam_to_world[:3, 2] for f in record.frames}
    assert np.all((pairs[:, 2] > 0) & (pairs[:, 2] <= 1))
    # paired cameras look in compatible directions (they see the same surfaces)
    for i, j, _ in pairs:
        a, b = selection[int(i)], selection[int(j)]
        assert forward[a] @ forward[b] > -0.2 or np.linalg.norm(centres[a] - centres[b]) > 1.0


def test_same_seed_gives_identical_bytes_with_iphone_and_anonymisation(tmp_path):
    kwargs = dict(frames=3, image_size=(146, 97), iphone=True, anon_every=2)
    generate_dataset(tmp_path / "a", 1, seed=7, **kwargs)
    generate_dataset(tmp_path / "b", 1, seed=7, **kwargs)
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    scene_id = scene_ids(7, 1)[0]
    record = read_scene(tmp_path / "a", scene_id, tmp_path / "a" / "pairs")
    devices = [f.device for f in record.frames]
    assert devices == ["dslr"] * 3 + ["iphone"] * 2
    iphone = record.frames[-1]
    assert iphone.camera.model == "OPENCV" and iphone.image_path.name.startswith("frame_")
    assert (iphone.camera.width, iphone.camera.height) == (160, 120)
    assert "video/" in (record.scene_dir / "iphone" / "colmap" / "images.txt").read_text()
    masks = [np.asarray(Image.open(f.mask_path)) for f in record.frames if f.device == "dslr"]
    assert np.all(masks[0] == 255) and (masks[1] == 0).any() and set(np.unique(masks[1])) <= {0, 255}
    other = generate_dataset(tmp_path / "c", 1, seed=8, frames=3, image_size=(146, 97))
    assert other != [scene_id]


def test_config_validation_and_splits():
    with pytest.raises(ValueError, match="--frames"):
        SynthConfig(frames=1).validate()
    with pytest.raises(ValueError, match="--image-size"):
        SynthConfig(image_size=(10, 10)).validate()
    assert split_scenes(["a"]) == (["a"], [])
    assert split_scenes(["a", "b"]) == (["a"], ["b"])
    assert split_scenes(list("abcdefgh"))[1] == ["d", "h"]


def test_scannetpp_sized_options_reach_faces_objects_and_stay_readable(tmp_path):
    from datasets.synthetic.generate import PRESETS
    from datasets.synthetic.lens import Lens

    preset = PRESETS["scannetpp"]
    assert preset["image_size"] == (1752, 1168) and preset["frames"] >= 150
    assert preset["mesh_faces"] >= 200_000 and preset["objects"] >= 100
    root = tmp_path / "root"
    (scene_id,) = generate_dataset(
        root, 1, seed=2, frames=2, image_size=(176, 118), mesh_faces=200_000, objects=150
    )
    scans = root / "data" / scene_id / "scans"
    mesh = read_ply(scans / "mesh_aligned_0.05.ply")
    assert len(mesh.faces) >= 200_000
    groups = json.loads((scans / "segments_anno.json").read_text())["segGroups"]
    assert len(groups) >= 150 and all(g["segments"] for g in groups)
    assert json.loads((scans / "segments.json").read_text())["segIndices"] == list(range(len(mesh.vertices)))
    bench = root / "metadata" / "semantic_benchmark"
    label_map = load_label_map(
        bench / "top100.txt", bench / "top100_instance.txt", bench / "map_benchmark.csv"
    )
    labels = read_vertex_panoptic_ids(
        scans / "segments.json", scans / "segments_anno.json", label_map, len(mesh.vertices)
    )
    assert len(labels.segments) >= 140 and labels.unknown_vertices == {}
    face_ids = labels.pan_ids[mesh.faces]  # subdivision keeps one object id per face
    assert np.all(face_ids[:, 0] == face_ids[:, 2]) and np.all(face_ids[:, 1] == face_ids[:, 2])
    # the DSLR camera line: OPENCV_FISHEYE W H fx fy cx cy k1 k2 k3 k4, as the reader and the lens take it
    line = (root / "data" / scene_id / "dslr" / "colmap" / "cameras.txt").read_text().splitlines()[3].split()
    assert line[:4] == ["1", "OPENCV_FISHEYE", "176", "118"] and len(line) == 12
    camera = read_scene(root, scene_id).frames[0].camera
    assert camera.model == "OPENCV_FISHEYE" and len(camera.params) == 8
    assert Lens.from_camera(camera).dist == tuple(float(v) for v in line[8:])


def test_mesh_faces_changes_density_only(tmp_path):
    kwargs = {"frames": 2, "image_size": (96, 64)}
    (plain,) = generate_dataset(tmp_path / "a", 1, seed=9, **kwargs)
    generate_dataset(tmp_path / "b", 1, seed=9, mesh_faces=300_000, **kwargs)
    a, b = (tmp_path / name / "data" / plain for name in ("a", "b"))
    assert (a / "dslr/colmap/cameras.txt").read_text() == (b / "dslr/colmap/cameras.txt").read_text()

    def poses(scene):  # the first line of each image: id, pose, camera, name (the 2-D points come from depth)
        lines = [
            line for line in (scene / "dslr/colmap/images.txt").read_text().splitlines() if line[:1] != "#"
        ]
        return lines[::2]

    assert poses(a) == poses(b)
    groups_a, groups_b = (
        json.loads((s / "scans/segments_anno.json").read_text())["segGroups"] for s in (a, b)
    )
    assert [(g["label"], g["obb"]) for g in groups_a] == [(g["label"], g["obb"]) for g in groups_b]
    assert len(read_ply(b / "scans/mesh_aligned_0.05.ply").faces) >= 300_000


def test_opencv_dslr_camera_model(tmp_path):
    (scene_id,) = generate_dataset(tmp_path, 1, seed=1, frames=2, image_size=(96, 64), camera_model="OPENCV")
    camera = read_scene(tmp_path, scene_id).frames[0].camera
    assert camera.model == "OPENCV" and len(camera.params) == 8


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("mesh_faces", -1, "--mesh-faces"),
        ("objects", -5, "--objects"),
        ("camera_model", "PINHOLE", "--camera-model"),
        ("dslr_focal_range", (0.4, 0.6), "--dslr-focal-range"),
        ("dslr_focal_range", (0.8, 0.6), "--dslr-focal-range"),
    ],
)
def test_realistic_options_reject_bad_values(field, value, flag):
    with pytest.raises(ValueError, match=flag):
        SynthConfig(**{field: value}).validate()


def test_a_focal_range_changes_the_focal_and_nothing_else(tmp_path):
    kwargs = {"seed": 3, "frames": 2, "image_size": (96, 64)}
    (plain,) = generate_dataset(tmp_path / "plain", 1, **kwargs)
    (wide,) = generate_dataset(tmp_path / "wide", 1, dslr_focal_range=(0.88, 0.9), **kwargs)
    assert plain == wide
    plain_camera = read_scene(tmp_path / "plain", plain).frames[0].camera
    wide_camera = read_scene(tmp_path / "wide", wide).frames[0].camera
    assert 0.58 * 96 <= plain_camera.params[0] <= 0.64 * 96
    assert 0.88 * 96 <= wide_camera.params[0] <= 0.9 * 96
    # the focal is drawn in place of the default one: principal point, distortion and room stay
    assert plain_camera.params[2:] == wide_camera.params[2:]
    meshes = [tmp_path / run / "data" / plain / "scans/mesh_aligned_0.05.ply" for run in ("plain", "wide")]
    assert meshes[0].read_bytes() == meshes[1].read_bytes()
