"""`preprocess_scene` end to end on a small ScanNet++-layout scene, and its agreement with an independent,
literal re-statement of the official per-image procedure (cv2 + PIL + pyrender calls in the documented order)."""

from __future__ import annotations

import dataclasses
import os

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import trimesh
from PIL import Image
from scipy.spatial.transform import Rotation

from datasets.preprocess.errors import BadSceneInput
from datasets.preprocess.result import PreprocessConfig
from datasets.preprocess.scene import preprocess_scene
from datasets.scannetpp.reader import read_scene

from .conftest import SCENE_ID

# ------------------------------------------------------------------------------------------------------------
# The official procedure, re-stated literally from the reference (scannetpp_format.md 2.3 / 2.4, panst3r_spec 7)

CLS_SEP = 256
MIN_INST_AREA = 50
ZNEAR, ZFAR = 0.05, 20.0
_reference_renderer = None  # kept alive: deleting a pyrender EGL renderer terminates the shared EGL display


def official_label_map(root: Path):
    bench = root / "metadata" / "semantic_benchmark"
    classes = [line.strip() for line in (bench / "top100.txt").read_text().splitlines()]
    semantic_cls = {name: i for i, name in enumerate(classes)}
    thing_cls = {line.strip() for line in (bench / "top100_instance.txt").read_text().splitlines()}
    label_map, crowd = dict(semantic_cls), set()
    for _, row in pd.read_csv(bench / "map_benchmark.csv").iterrows():
        sem, inst = row["semantic_map_to"], row["instance_map_to"]
        if pd.isna(sem) and pd.isna(inst):
            continue
        if (pd.isna(inst) or inst not in semantic_cls) and (pd.isna(sem) or sem not in semantic_cls):
            continue
        if not pd.isna(inst):
            label_map[row["class"]] = semantic_cls[inst]
        elif sem not in thing_cls:
            label_map[row["class"]] = semantic_cls[sem]
        else:
            label_map[row["class"]] = semantic_cls[sem]
            crowd.add(row["class"])
    return label_map, crowd


def official_vertex_ids(
    scene_dir: Path, num_vertices: int, label_map, crowd, export_crowd=False
) -> np.ndarray:
    import json

    seg = json.loads((scene_dir / "scans/segments.json").read_text())
    assert seg["segIndices"] == list(range(num_vertices))
    pan = np.zeros(num_vertices, dtype=np.int64)
    inst_id = 0
    for group in json.loads((scene_dir / "scans/segments_anno.json").read_text())["segGroups"]:
        if group["label"] not in label_map or (group["label"] in crowd and not export_crowd):
            continue
        inst_id += 1
        pan[group["segments"]] = inst_id * CLS_SEP + label_map[group["label"]]
    return pan


def official_colmap(scene_dir: Path, device: str) -> dict:
    lines = (scene_dir / device / "colmap/cameras.txt").read_text().splitlines()[3:]
    cameras = {}
    for line in lines:
        parts = line.split(" ")
        cameras[int(parts[0])] = [parts[1], int(parts[2]), int(parts[3])] + [float(p) for p in parts[4:]]
    images = [
        ln
        for ln in (scene_dir / device / "colmap/images.txt").read_text().splitlines()
        if not ln.startswith("#")
    ]
    result = {}
    for line in images[::2]:
        parts = line.split(" ")
        qw, qx, qy, qz, tx, ty, tz = (float(p) for p in parts[1:8])
        world_to_cam = np.eye(4)
        world_to_cam[:3, :3] = Rotation.from_quat((qx, qy, qz, qw)).as_matrix()
        world_to_cam[:3, 3] = (tx, ty, tz)
        name = parts[9].removeprefix("iphone/").removeprefix("video/")
        result[name] = (cameras[int(parts[8])], np.linalg.inv(world_to_cam))
    return result


def official_undistort(intrinsics, rgb, mask):
    model, width, height, fx, fy, cx, cy = intrinsics[:7]
    dist = np.array(intrinsics[7:])
    K = np.array([[fx, 0, cx - 0.5], [0, fy, cy - 0.5], [0, 0, 1]])  # COLMAP -> OpenCV
    if model == "OPENCV_FISHEYE":
        new_K = cv2.fisheye.estimateNewCameraMatrixForUndistortRectify(
            K, dist, (width, height), np.eye(3), balance=0.0
        )
        new_K[0, 2] = width / 2.0
        new_K[1, 2] = height / 2.0
        map1, map2 = cv2.fisheye.initUndistortRectifyMap(
            K, dist, np.eye(3), new_K, (width, height), cv2.CV_32FC1
        )
    else:
        new_K, _ = cv2.getOptimalNewCameraMatrix(K, dist, (width, height), 1, (width, height), True)
        map1, map2 = cv2.initUndistortRectifyMap(K, dist, np.eye(3), new_K, (width, height), cv2.CV_32FC1)
    rgb = cv2.remap(rgb, map1, map2, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    mask = cv2.remap(
        mask, map1, map2, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=255
    )
    return new_K, rgb, mask  # new_K in the OpenCV convention


def official_rescale(rgb, mask, K_opencv, target=920):
    image = Image.fromarray(rgb)
    input_resolution = np.array(image.size)
    output_resolution = np.array([target, target * 3 // 4])
    scale_final = max(output_resolution / input_resolution) + 1e-8
    output_resolution = np.floor(input_resolution * scale_final).astype(int)
    resample = Image.Resampling.LANCZOS if scale_final < 1 else Image.Resampling.BICUBIC
    image = image.resize(tuple(int(x) for x in output_resolution), resample=resample)
    mask = cv2.resize(
        mask,
        tuple(int(x) for x in output_resolution),
        fx=scale_final,
        fy=scale_final,
        interpolation=cv2.INTER_NEAREST,
    )
    # camera_matrix_of_crop: scale in the COLMAP convention, shift by half the margin, back to OpenCV.
    margins = input_resolution * scale_final - output_resolution
    K_colmap = K_opencv.copy()
    K_colmap[:2, 2] += 0.5
    K_colmap[:2, :] *= scale_final
    K_colmap[:2, 2] -= 0.5 * margins
    K_opencv = K_colmap.copy()
    K_opencv[:2, 2] -= 0.5
    return np.asarray(image), mask, K_opencv


def official_render(mesh_nodes, K_colmap, cam_to_world, width, height):
    import pyrender

    global _reference_renderer
    scene = pyrender.Scene()
    seg_node_map = {}
    for pan_id, mesh in mesh_nodes:
        node = scene.add(mesh)
        seg_node_map[node] = (pan_id % 256, (pan_id // 256) % 256, pan_id // 65536)
    camera = pyrender.IntrinsicsCamera(
        K_colmap[0, 0], K_colmap[1, 1], K_colmap[0, 2], K_colmap[1, 2], ZNEAR, ZFAR
    )
    scene.add(camera, pose=cam_to_world @ np.diag([1.0, -1.0, -1.0, 1.0]))
    if _reference_renderer is None:
        _reference_renderer = pyrender.OffscreenRenderer(width, height)
    _reference_renderer.viewport_width, _reference_renderer.viewport_height = width, height
    flags = pyrender.RenderFlags.SKIP_CULL_FACES | pyrender.RenderFlags.SEG
    color, depth = _reference_renderer.render(scene, flags=flags, seg_node_map=seg_node_map)
    return color, depth


def official_scene(root: Path, scene_id: str, selection: list[str], tmp: Path, export_crowd=False) -> dict:
    """Per image, the official steps. Rendering uses pyrender's SEG mode with one node per provoking-vertex id,
    an independent route to the fork's SEG_VERT output (both cull back faces and skip multisampling)."""
    import pyrender

    scene_dir = root / "data" / scene_id
    with open(scene_dir / "scans/mesh_aligned_0.05.ply", "rb") as f:
        mesh = trimesh.Trimesh(**trimesh.exchange.ply.load_ply(f), process=False)
    label_map, crowd = official_label_map(root)
    pan = official_vertex_ids(scene_dir, len(mesh.vertices), label_map, crowd, export_crowd)
    face_ids = pan[mesh.faces[:, 2]]
    mesh_nodes = [
        (
            int(i),
            pyrender.Mesh.from_trimesh(
                trimesh.Trimesh(mesh.vertices, mesh.faces[face_ids == i], process=False)
            ),
        )
        for i in np.unique(face_ids)
    ]
    valid_ids = np.unique(pan)
    colmap = {**official_colmap(scene_dir, "dslr"), **official_colmap(scene_dir, "iphone")}
    out = {"names": [], "K": [], "c2w": [], "images": [], "depth": [], "panoptic": []}
    for name in selection:
        if "frame_" in name:
            key, image_path, mask_path = name + ".jpg", scene_dir / "iphone/rgb" / f"{name}.jpg", None
            mask_path = scene_dir / "iphone/rgb_masks" / f"{name}.png"
        else:
            key, image_path = name + ".JPG", scene_dir / "dslr/resized_images" / f"{name}.JPG"
            mask_path = scene_dir / "dslr/resized_anon_masks" / f"{name}.png"
        intrinsics, cam_to_world = colmap[key]
        rgb = np.array(Image.open(image_path))
        mask = np.array(Image.open(mask_path))
        rgb[mask == 0] = 0
        new_K, rgb, mask = official_undistort(intrinsics, rgb, mask)
        rgb, mask, K_opencv = official_rescale(rgb, mask, new_K)
        jpg = tmp / f"{name}.jpg"
        Image.fromarray(rgb).save(jpg)
        K_colmap = K_opencv.copy()
        K_colmap[:2, 2] += 0.5
        height, width = mask.shape
        color, depth = official_render(mesh_nodes, K_colmap, cam_to_world, width, height)
        depth_mm = (depth * 1000).astype(np.uint16)
        depth_mm[mask < 255] = 0
        colour = (color * (mask / 255)[..., None]).astype(np.uint8)
        colour = colour.astype(np.int64)
        ids = colour[..., 0] + 256 * colour[..., 1] + 65536 * colour[..., 2]
        uniq, counts = np.unique(ids, return_counts=True)
        for value, count in zip(uniq, counts):
            if count < MIN_INST_AREA or value not in valid_ids:
                ids[ids == value] = 0
        out["names"].append(name)
        out["K"].append(K_colmap)
        out["c2w"].append(cam_to_world)
        out["images"].append(np.array(Image.open(jpg)))
        out["depth"].append(depth_mm)
        out["panoptic"].append(ids)
    return out


# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scene_with_pairs(mini_scene):
    root, pairs_dir, selection = mini_scene
    record = read_scene(root, SCENE_ID, pairs_dir)
    return record, preprocess_scene(record, PreprocessConfig())


def _frames_in_selection_order(result):
    for camera, index in result.frame_order:
        block = result.blocks[camera]
        yield block, index


def assert_matches_official(ours, reference) -> tuple[float, float]:
    """Same frames, intrinsics, poses and stored images; returns (depth agreement, id agreement)."""
    names = [block.names[i] for block, i in _frames_in_selection_order(ours)]
    assert names == reference["names"]
    valid_depth = equal_depth = equal_ids = total_px = 0
    for k, (block, i) in enumerate(_frames_in_selection_order(ours)):
        np.testing.assert_allclose(block.intrinsics[i], reference["K"][k], rtol=0, atol=1e-9)
        np.testing.assert_allclose(block.cam_to_world[i], reference["c2w"][k], rtol=0, atol=1e-9)
        np.testing.assert_array_equal(block.images[i], reference["images"][k])
        ref_depth = reference["depth"][k].astype(np.int64)
        valid = (ref_depth > 0) | (block.depth_mm[i] > 0)
        valid_depth += valid.sum()
        equal_depth += (np.abs(block.depth_mm[i].astype(np.int64) - ref_depth) <= 1)[valid].sum()
        equal_ids += (block.panoptic[i].astype(np.int64) == reference["panoptic"][k]).sum()
        total_px += ref_depth.size
    return equal_depth / max(valid_depth, 1), equal_ids / total_px


def test_official_equivalence(mini_scene, scene_with_pairs, tmp_path):
    root, _pairs_dir, selection = mini_scene
    _record, ours = scene_with_pairs
    reference = official_scene(root, SCENE_ID, selection, tmp_path)
    assert reference["names"] == selection
    depth_agreement, id_agreement = assert_matches_official(ours, reference)
    assert depth_agreement >= 0.999, f"depth within 1 mm on {depth_agreement:.5%} of valid pixels"
    assert id_agreement >= 0.995, f"panoptic ids equal on {id_agreement:.5%} of pixels"


def test_blocks_order_and_shapes(scene_with_pairs):
    record, result = scene_with_pairs
    assert result.scene_id == SCENE_ID
    assert result.num_frames == len(record.frames) == 8
    dslr, iphone = result.blocks["dslr"], result.blocks["iphone"]
    assert dslr.images.shape == (6, 690, 1035, 3) and dslr.images.dtype == np.uint8
    assert iphone.images.shape == (2, 690, 920, 3)
    assert dslr.depth_mm.dtype == np.uint16 and dslr.panoptic.dtype == np.uint32
    assert dslr.intrinsics.shape == (6, 3, 3) and dslr.cam_to_world.shape == (6, 4, 4)
    assert result.frame_order == [("dslr", i) for i in range(6)] + [("iphone", 0), ("iphone", 1)]
    # The undistorted fisheye principal point is the image centre, rescaled: (W/2 + 0.5) s - margin / 2.
    s = max(920 / 438, 690 / 292) + 1e-8
    assert dslr.intrinsics[0, 0, 2] == pytest.approx((219 + 0.5) * s - 0.5 * (438 * s - 1035), abs=1e-9)
    for key in ("undistort", "rescale", "render", "jpeg", "pairs", "total"):
        assert result.timings[key] >= 0


def test_depth_and_ids_are_consistent(scene_with_pairs):
    _record, result = scene_with_pairs
    for block in result.blocks.values():
        assert block.depth_mm.max() <= 20000
        # Inside a closed room every fully valid pixel has depth.
        assert (block.depth_mm > 0).mean() > 0.9
        # Frame 0 has an anonymised ellipse: no depth there, and no ids either apart from its blurred rim, where
        # the mask multiplication turns e.g. wall 6*256 into the valid id 5*256 (the official output has them too).
        hole = block.depth_mm[0] == 0
        assert hole.sum() > 2000
        assert (block.panoptic[0][hole] == 0).mean() > 0.97
        assert block.images[0][hole].mean() < 40


def test_class_mapping_crowd_and_unknown_labels(scene_with_pairs):
    _record, result = scene_with_pairs
    by_name = {s["orig_class_name"]: s for s in result.segments}
    assert by_name["office desk"]["class_id"] == 3  # raw label mapped to the thing "table"
    assert by_name["wall panel"]["class_id"] == 0  # raw label mapped to the stuff "wall"
    assert "boxes" not in by_name  # crowd, dropped by default
    assert "sculpture" not in by_name  # listed in the CSV without a target -> void
    seen = set()
    for block in result.blocks.values():
        seen |= set(np.unique(block.panoptic).tolist())
    assert seen <= {s["id"] for s in result.segments} | {0}
    assert by_name["office desk"]["id"] in seen
    assert all(s["id"] == s["instance_id"] * 256 + s["class_id"] for s in result.segments)
    assert [c["name"] for c in result.categories][:3] == ["wall", "ceiling", "floor"]


def test_export_crowd_keeps_crowd_groups(mini_scene, tmp_path):
    root, pairs_dir, selection = mini_scene
    record = read_scene(root, SCENE_ID, pairs_dir)
    record = dataclasses.replace(record, frames=record.frames[:2], pairs=np.array([[0, 1, 0.9]]))
    result = preprocess_scene(record, PreprocessConfig(export_crowd=True))
    crowd = [s for s in result.segments if s["iscrowd"]]
    assert [s["orig_class_name"] for s in crowd] == ["boxes"]
    reference = official_scene(root, SCENE_ID, selection[:2], tmp_path, export_crowd=True)
    for k, (block, i) in enumerate(_frames_in_selection_order(result)):
        assert (block.panoptic[i].astype(np.int64) == reference["panoptic"][k]).mean() >= 0.995


def test_given_pairs_are_kept(scene_with_pairs):
    record, result = scene_with_pairs
    np.testing.assert_array_equal(result.pairs, np.asarray(record.pairs, dtype=np.float64))
    assert result.pairs.shape[1] == 3


def test_pairs_from_covisibility_when_none_given(mini_scene):
    root, _pairs_dir, _selection = mini_scene
    record = read_scene(root, SCENE_ID, None)
    assert record.pairs is None
    config = PreprocessConfig(pairs_min_overlap=0.3)
    result = preprocess_scene(record, config)
    pairs = result.pairs
    assert pairs.ndim == 2 and pairs.shape[1] == 3 and len(pairs) > 0
    assert np.all(pairs[:, 0] < pairs[:, 1])
    assert np.all(pairs[:, 2] >= 0.3) and np.all(pairs[:, 2] <= 1.0)
    assert pairs[:, 1].max() < result.num_frames


def test_image_of_the_wrong_size_is_a_bad_input(mini_scene, tmp_path):
    root, pairs_dir, _selection = mini_scene
    record = read_scene(root, SCENE_ID, pairs_dir)
    wrong = tmp_path / "small.JPG"
    Image.new("RGB", (100, 80)).save(wrong)
    frame = dataclasses.replace(record.frames[0], image_path=wrong)
    record = dataclasses.replace(record, frames=(frame,), pairs=None)
    with pytest.raises(BadSceneInput, match="small.JPG.*cameras.txt"):
        preprocess_scene(record)


def test_unreadable_image_and_no_frames_are_bad_inputs(mini_scene, tmp_path):
    root, pairs_dir, _selection = mini_scene
    record = read_scene(root, SCENE_ID, pairs_dir)
    broken = tmp_path / "broken.JPG"
    broken.write_bytes(b"not a jpeg")
    frame = dataclasses.replace(record.frames[0], image_path=broken)
    with pytest.raises(BadSceneInput, match="broken.JPG"):
        preprocess_scene(dataclasses.replace(record, frames=(frame,), pairs=None))
    with pytest.raises(BadSceneInput, match="no frames"):
        preprocess_scene(dataclasses.replace(record, frames=(), pairs=None))


def test_segments_of_another_mesh_are_a_bad_input(mini_scene, tmp_path):
    root, pairs_dir, _selection = mini_scene
    record = read_scene(root, SCENE_ID, pairs_dir)
    segments = tmp_path / "segments.json"
    segments.write_text('{"segIndices": [0, 1, 2]}')
    with pytest.raises(BadSceneInput, match="segIndices"):
        preprocess_scene(dataclasses.replace(record, segments_path=segments, pairs=None))


def _generated_root(request) -> Path:
    """ROOT of the generator's synthetic scenes (tests/conftest.py `synthetic_root`), or skip."""
    try:
        value = request.getfixturevalue("synthetic_root")
    except pytest.FixtureLookupError:
        pytest.skip(
            "no `synthetic_root` fixture yet (the synthetic generator's tests/conftest.py provides it)"
        )
    if isinstance(value, dict):
        value = value.get("root")
    elif isinstance(value, (tuple, list)):
        value = value[0]
    root = Path(value)
    if not (root / "data").is_dir():
        pytest.skip(f"`synthetic_root` does not look like a ScanNet++ root (no data/ folder): {root}")
    return root


@pytest.mark.slow
def test_official_equivalence_on_a_generated_scene(request, tmp_path):
    root = _generated_root(request)
    scene_id = sorted(p.name for p in (root / "data").iterdir() if p.is_dir())[0]
    record = read_scene(root, scene_id, None)
    record = dataclasses.replace(record, frames=record.frames[:6])
    ours = preprocess_scene(record, PreprocessConfig())
    selection = [f.name for f in record.frames]
    reference = official_scene(root, scene_id, selection, tmp_path)
    depth_agreement, id_agreement = assert_matches_official(ours, reference)
    assert depth_agreement >= 0.999, f"depth within 1 mm on {depth_agreement:.5%} of valid pixels"
    assert id_agreement >= 0.995, f"panoptic ids equal on {id_agreement:.5%} of pixels"
