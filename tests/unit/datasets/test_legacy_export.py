import json

import cv2
import numpy as np
import pytest
from PIL import Image

from datasets.legacy_export import export_legacy, id_to_rgb, panoptic_visualisation, rgb_to_id
from datasets.preprocess.result import FrameBlock, PreprocessedScene
from datasets.store import writer

CATEGORIES = [{"id": 0, "name": "wall", "isthing": 0}, {"id": 9, "name": "chair", "isthing": 1}]


def _scene(scene_id: str, frames: int, seed: int) -> PreprocessedScene:
    rng = np.random.default_rng(seed)
    height, width = 10, 14
    # Smooth images so the JPEG round trip stays close; ids span all three RGB channels.
    ramp = np.linspace(0, 200, width, dtype=np.float64)[None, :, None]
    images = np.broadcast_to(ramp, (frames, height, width, 3)).astype(np.uint8).copy()
    panoptic = np.zeros((frames, height, width), dtype=np.uint32)
    panoptic[:, :, 7:] = 300 * 256 + 9
    panoptic[:, :5, :7] = 1 * 256 + 0
    intrinsics = np.repeat(np.eye(3)[None], frames, axis=0)
    intrinsics[:, 0, 0] = 100.0 + seed
    poses = np.repeat(np.eye(4)[None], frames, axis=0)
    poses[:, :3, 3] = rng.normal(size=(frames, 3))
    block = FrameBlock(
        camera="dslr",
        names=[f"DSC{seed}{i:04d}" for i in range(frames)],
        images=images,
        depth_mm=rng.integers(0, 20000, (frames, height, width), dtype=np.uint16),
        panoptic=panoptic,
        intrinsics=intrinsics,
        cam_to_world=poses,
    )
    pairs = np.array([[0, i, 0.4] for i in range(1, frames)], dtype=np.float64)
    segments = [
        {"id": 256, "instance_id": 1, "class_id": 0, "orig_class_name": "wall", "iscrowd": 0},
        {
            "id": 300 * 256 + 9,
            "instance_id": 300,
            "class_id": 9,
            "orig_class_name": "chair",
            "iscrowd": 0,
        },
    ]
    return PreprocessedScene(
        scene_id, {"dslr": block}, [("dslr", i) for i in range(frames)], pairs, segments, CATEGORIES
    )


@pytest.fixture
def store(tmp_path):
    store = tmp_path / "store"
    writer.open_or_create_store(store)
    hashes = {"source_hash": "s", "config_hash": "c", "code_version": "v"}
    writer.write_scene(store, _scene("bbbbbbbbbb", 3, seed=1), **hashes)
    writer.write_scene(store, _scene("aaaaaaaaaa", 2, seed=2), **hashes)
    writer.set_categories(store, CATEGORIES)
    return store


def test_id_rgb_round_trip():
    ids = np.array([[0, 255, 256, 300 * 256 + 9]], dtype=np.uint32)
    rgb = id_to_rgb(ids)
    assert rgb[0, 2].tolist() == [0, 1, 0]
    np.testing.assert_array_equal(rgb_to_id(rgb), ids)
    vis = panoptic_visualisation(ids)
    assert vis[0, 0].tolist() == [0, 0, 0] and vis.dtype == np.uint8
    np.testing.assert_array_equal(panoptic_visualisation(ids), vis)  # stable across calls


def test_export_writes_the_official_layout(store, tmp_path):
    out = tmp_path / "legacy"
    summary = export_legacy(store, out)
    assert summary.scenes == ["aaaaaaaaaa", "bbbbbbbbbb"] and summary.frames == 5
    assert json.loads((out / "categories.json").read_text()) == CATEGORIES

    scene = _scene("bbbbbbbbbb", 3, seed=1)
    block = scene.blocks["dslr"]
    folder = out / "bbbbbbbbbb"
    for sub in ("images", "depth", "panoptic", "panoptic_vis"):
        assert sorted(p.stem for p in (folder / sub).iterdir()) == block.names
    stem = block.names[1]
    depth = cv2.imread(str(folder / "depth" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16
    np.testing.assert_array_equal(depth, block.depth_mm[1])
    panoptic_bgr = cv2.imread(str(folder / "panoptic" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(rgb_to_id(panoptic_bgr[..., ::-1]), block.panoptic[1])
    jpeg = np.asarray(Image.open(folder / "images" / f"{stem}.jpg"))
    assert jpeg.shape == block.images[1].shape
    assert np.abs(jpeg.astype(int) - block.images[1]).mean() < 3
    assert json.loads((folder / "segments.json").read_text()) == scene.segments

    meta = np.load(folder / "scene_metadata.npz")
    assert set(meta.files) == {"trajectories", "intrinsics", "images", "pairs", "cls_sep"}
    np.testing.assert_array_equal(meta["trajectories"], block.cam_to_world)
    np.testing.assert_array_equal(meta["intrinsics"], block.intrinsics)
    assert meta["images"].dtype.kind == "U" and list(meta["images"]) == block.names
    np.testing.assert_array_equal(meta["pairs"], scene.pairs)
    assert int(meta["cls_sep"]) == 256


def test_all_metadata_concatenates_with_global_pair_indices(store, tmp_path):
    out = tmp_path / "legacy"
    export_legacy(store, out)
    meta = np.load(out / "all_metadata.npz")  # no allow_pickle, as the official loaders
    assert set(meta.files) == {
        "counts",
        "scenes",
        "sceneids",
        "images",
        "intrinsics",
        "trajectories",
        "pairs",
        "cls_sep",
    }
    assert list(meta["scenes"]) == ["aaaaaaaaaa", "bbbbbbbbbb"]
    assert meta["counts"].tolist() == [0, 2]
    assert meta["sceneids"].tolist() == [0, 0, 1, 1, 1]
    assert meta["images"].tolist()[2:] == _scene("bbbbbbbbbb", 3, seed=1).blocks["dslr"].names
    assert meta["intrinsics"].shape == (5, 3, 3) and meta["trajectories"].shape == (5, 4, 4)
    # scene a: pair (0, 1); scene b: pairs (0, 1), (0, 2) shifted by 2
    assert meta["pairs"][:, :2].astype(int).tolist() == [[0, 1], [2, 3], [2, 4]]
    assert int(meta["cls_sep"]) == 256


def test_export_errors_name_the_fix(store, tmp_path):
    with pytest.raises(ValueError, match="no committed scene zzz"):
        export_legacy(store, tmp_path / "x", scenes=["zzz"])
    empty = tmp_path / "empty"
    writer.open_or_create_store(empty)
    with pytest.raises(ValueError, match="panst3r preprocess"):
        export_legacy(empty, tmp_path / "y")
