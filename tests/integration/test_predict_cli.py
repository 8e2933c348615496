"""`panst3r predict` for real on the official-format tiny checkpoint and synthetic images."""

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image
from shared_fixtures import PARITY_MISSING, parity_fixture_dir

from datasets.segment_colors import rgb_to_ids
from flows.cli.main import main
from panst3r_core.classes import union_class_sets

FIXTURE = parity_fixture_dir()
pytestmark = [
    pytest.mark.skipif(FIXTURE is None, reason=PARITY_MISSING),
    pytest.mark.usefixtures("one_torch_thread"),
]


def _synthetic_images(folder: Path, count: int = 3) -> list[Path]:
    """Coloured rectangles on a gradient, 128x96 (already a network resolution for --image-size 128)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    ys, xs = np.mgrid[0:96, 0:128]
    for i in range(count):
        img = np.stack([xs * 2, ys * 2, np.full_like(xs, 60 * i)], -1).astype(np.uint8)
        img[20 + 5 * i : 60, 30 + 10 * i : 90] = (200, 40, 40)
        img[65:90, 10:50] = (30, 180, 60)
        path = folder / f"frame_{i:02d}.png"
        Image.fromarray(img).save(path)
        paths.append(path)
    return paths


def _gltf_json(path: Path) -> dict:
    data = path.read_bytes()
    length = struct.unpack("<I", data[12:16])[0]
    return json.loads(data[20 : 20 + length])


def test_predict_writes_every_output(tmp_path, capsys):
    images = _synthetic_images(tmp_path / "images")
    out = tmp_path / "out"
    code = main(
        [
            "predict",
            "--weights", str(FIXTURE / "tiny_v1.pth"),
            "--dino-config", str(FIXTURE / "tiny_dino_config.json"),
            "--images", str(tmp_path / "images"),
            "--classes", "scannetpp", "coco",
            "--text-embeddings", "hashed",
            "--num-keyframes", "2",
            "--image-size", "128",
            "--min-confidence", "1.0",
            "--raw",
            "--no-progress",
            "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "3 views" in printed and str(out / "scene.glb") in printed

    segments = json.loads((out / "segments.json").read_text())
    assert segments["views"] == [p.stem for p in images]
    assert segments["class_names"] == union_class_sets(["scannetpp", "coco"])
    assert (
        segments["class_names"][:2] == ["wall", "ceiling"] and "wall-other-merged" in segments["class_names"]
    )
    assert segments["keyframes"] == [0, 2] and segments["postprocess"] == "standard_v2"
    by_id = {s["id"]: s for s in segments["segments"]}
    for v, stem in enumerate(segments["views"]):
        ids = rgb_to_ids(np.asarray(Image.open(out / "panoptic" / f"{stem}.png")))
        assert ids.shape == (96, 128)
        assert set(np.unique(ids)) - {0} <= set(by_id)
        for seg_id, seg in by_id.items():
            assert seg["area_per_view"][v] == int((ids == seg_id).sum())
            assert seg["class_name"] == segments["class_names"][seg["class_id"]]
        assert np.asarray(Image.open(out / "panoptic_vis" / f"{stem}.png")).shape == (96, 128, 3)

    cameras = json.loads((out / "cameras.json").read_text())["cameras"]
    # tiny random-ish weights: focal values are arbitrary but finite
    assert len(cameras) == 3 and all(np.isfinite(c["focal"]) for c in cameras)
    assert np.asarray(cameras[0]["cam_to_world"]).shape == (4, 4)

    cloud = trimesh.load(out / "scene.ply")
    assert isinstance(cloud, trimesh.PointCloud) and len(cloud.vertices) == 3 * 96 * 128
    assert np.isfinite(np.asarray(cloud.vertices)).all()
    scene = trimesh.load(out / "scene.glb")
    assert isinstance(scene, trimesh.Scene)
    node_names = {n["name"] for n in _gltf_json(out / "scene.glb")["nodes"]}
    assert {"camera_0000", "camera_0001", "camera_0002"} <= node_names
    assert sum(1 for n in node_names if n.startswith("segment_")) == len(
        [s for s in segments["segments"] if s["area"] > 0]
    )

    # panoptic.json + panoptic/ is valid COCO-panoptic input for `panst3r pq`: a prediction scores 1 on itself
    coco = out / "panoptic.json"
    # Things and stuff as the sets the vocabulary came from say (ScanNet++ first: its `pillow` is a thing,
    # COCO's a stuff class); not every category a thing.
    isthing = {c["name"]: c["isthing"] for c in json.loads(coco.read_text())["categories"]}
    assert isthing["wall"] == 0 and isthing["chair"] == 1 and isthing["pillow"] == 1
    assert isthing["person"] == 1 and isthing["sky-other-merged"] == 0
    assert (
        main(
            ["pq", "--gt-json", str(coco), "--pred-json", str(coco), "--json-out", str(tmp_path / "pq.json")]
        )
        == 0
    )
    pq = json.loads((tmp_path / "pq.json").read_text())
    present_classes = {s["class_id"] for s in segments["segments"] if s["area"] > 0}
    assert present_classes and pq["All"]["n"] == len(present_classes)
    assert pq["All"]["pq"] == pytest.approx(1.0)

    raw = np.load(out / "raw.npz")
    assert raw["pts3d"].shape == (3, 96, 128, 3) and raw["pts3d_local"].shape == (3, 96, 128, 3)
    assert raw["conf"].shape == (3, 96, 128) and raw["focal"].shape == (3,) and raw["c2w"].shape == (3, 4, 4)
    assert raw["pointmaps"].shape == (3, 96, 128, 7)
    assert raw["pred_logits"].shape == (1, 12, len(segments["class_names"]))
    assert raw["pred_masks"].shape == (3, 1, 12, 48, 64)
    assert list(raw["keyframes"]) == [0, 2]


def test_predict_with_fixture_embeddings_matches_official_segments(tmp_path):
    """--class-names + --class-embeddings on the fixture views reproduce the official (b2) + standard_v2."""
    inputs = np.load(FIXTURE / "inputs.npz")
    outputs = np.load(FIXTURE / "tiny_v1_outputs.npz")
    np.save(tmp_path / "emb.npy", outputs["class_emb"])
    out = tmp_path / "out"
    code = main(
        [
            "predict",
            "--weights", str(FIXTURE / "tiny_v1.pth"),
            "--dino-config", str(FIXTURE / "tiny_dino_config.json"),
            "--images", *[str(FIXTURE / f"input_view{i}.png") for i in range(4)],
            "--class-names", *[str(n) for n in inputs["class_names"]],
            "--class-embeddings", str(tmp_path / "emb.npy"),
            "--num-keyframes", "2",
            "--image-size", "128",
            "--no-progress",
            "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    segments = json.loads((out / "segments.json").read_text())["segments"]
    rows = [[s["id"], s["query_id"], s["class_id"]] for s in segments]
    np.testing.assert_array_equal(rows, outputs["c_standard_v2_segments"])


def test_bad_inputs_give_one_clear_error(tmp_path, capsys):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(b"not a png")
    base = [
        "predict",
        "--weights",
        str(FIXTURE / "tiny_v1.pth"),
        "--out",
        str(tmp_path / "o"),
        "--no-progress",
    ]
    assert main([*base, "--images", str(tmp_path / "imgs"), "--text-embeddings", "hashed"]) == 2
    assert "a.png" in capsys.readouterr().err
    assert main([*base, "--images", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
    assert main([*base, "--images", str(tmp_path), "--class-embeddings", "e.npy"]) == 2
    assert "--class-names" in capsys.readouterr().err
    assert main([*base, "--images", str(tmp_path), "--postprocess", "bogus"]) == 2
    assert "standard_v2" in capsys.readouterr().err
    missing_weights = ["predict", "--weights", str(tmp_path / "nope.pth"), "--images", str(tmp_path)]
    assert main([*missing_weights, "--out", str(tmp_path / "o")]) == 2
    assert "nope.pth" in capsys.readouterr().err


def _tiny_model_flags() -> list[str]:
    return [
        "--weights", str(FIXTURE / "tiny_v1.pth"),
        "--dino-config", str(FIXTURE / "tiny_dino_config.json"),
        "--text-embeddings", "hashed",
        "--num-keyframes", "2",
        "--image-size", "128",
        "--no-progress",
    ]  # fmt: skip


def test_video_streamed_to_disk(tmp_path, capsys):
    """--video sampled at --fps, --chunk-views + --stream-out: one view per sampled frame, ids on disk."""
    import cv2
    import zarr

    video = tmp_path / "walk.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (160, 120))
    ys, xs = np.mgrid[0:120, 0:160]
    for k in range(15):  # 1.5 s at 10 fps; sampled at 4 fps: frames 0, 3 (2.5 rounds up), 5, 8, 10, 13
        frame = np.stack([xs, ys, np.full_like(xs, 12 * k)], -1).astype(np.uint8)
        frame[30:80, 20 + 4 * k : 90 + 4 * k] = (40, 40, 200)
        writer.write(frame)
    writer.release()
    out = tmp_path / "out"
    flags = ["--video", str(video), "--fps", "4", "--chunk-views", "2", "--stream-out", "--out", str(out)]
    assert main(["predict", *_tiny_model_flags(), *flags]) == 0
    assert "6 views" in capsys.readouterr().out
    segments = json.loads((out / "segments.json").read_text())
    assert segments["views"] == [f"frame_{i:02d}" for i in (0, 3, 5, 8, 10, 13)]
    group = zarr.open_group(out / "prediction.zarr", mode="r")
    assert group["panoptic"].shape == (6, 96, 128) and group["pts3d"].chunks == (1, 96, 128, 3)
    by_id = {s["id"]: s for s in segments["segments"]}
    for v, stem in enumerate(segments["views"]):
        ids = rgb_to_ids(np.asarray(Image.open(out / "panoptic" / f"{stem}.png")))
        assert np.array_equal(ids, group["panoptic"][v])
        assert all(seg["area_per_view"][v] == int((ids == i).sum()) for i, seg in by_id.items())
    assert not (out / "scene.ply").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "walk.avi"]  # no partial folder left


def test_streamed_folder_equals_the_whole_scene_run(tmp_path):
    """The same folder through the whole-scene export and --chunk-views 2 --stream-out: identical ids."""
    images = _synthetic_images(tmp_path / "images", count=4)
    (tmp_path / "images" / "README.txt").write_text("not an image")
    common = [*_tiny_model_flags(), "--images", str(tmp_path / "images")]
    assert main(["predict", *common, "--out", str(tmp_path / "whole")]) == 0
    assert (
        main(["predict", *common, "--chunk-views", "2", "--stream-out", "--out", str(tmp_path / "stream")])
        == 0
    )
    for path in images:
        whole, stream = (
            np.asarray(Image.open(tmp_path / d / "panoptic" / f"{path.stem}.png"))
            for d in ("whole", "stream")
        )
        assert np.array_equal(whole, stream)
    for name in ("segments.json", "panoptic.json", "cameras.json"):
        whole, stream = (json.loads((tmp_path / d / name).read_text()) for d in ("whole", "stream"))
        whole.pop("timings_s", None), stream.pop("timings_s", None)
        assert whole == stream, name


def test_streaming_flags_give_one_clear_error(tmp_path, capsys):
    _synthetic_images(tmp_path / "images", count=2)
    common = [*_tiny_model_flags(), "--images", str(tmp_path / "images"), "--out", str(tmp_path / "o")]
    assert main(["predict", *common, "--stream-out"]) == 2
    assert "--chunk-views" in capsys.readouterr().err
    assert main(["predict", *common, "--stream-out", "--chunk-views", "2", "--raw"]) == 2
    assert "--raw" in capsys.readouterr().err
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "keep.txt").write_text("mine")
    assert main(["predict", *common, "--stream-out", "--chunk-views", "2"]) == 2
    assert "keep.txt" in capsys.readouterr().err and (tmp_path / "o" / "keep.txt").exists()
    (tmp_path / "empty").mkdir()
    assert (
        main(
            [
                "predict",
                *_tiny_model_flags(),
                "--images",
                str(tmp_path / "empty"),
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "holds no image files" in capsys.readouterr().err
    (tmp_path / "clip.mp4").write_text("not a video")
    video = ["--video", str(tmp_path / "clip.mp4"), "--out", str(tmp_path / "x")]
    assert main(["predict", *_tiny_model_flags(), *video]) == 2
    assert "clip.mp4" in capsys.readouterr().err


def test_kernel_flags_leave_cpu_results_unchanged(tmp_path, capsys):
    """--attention, --no-tf32 and --encoder-attention choose CUDA kernels: on the CPU every choice gives the
    default's files."""
    _synthetic_images(tmp_path / "images", count=3)
    common = [*_tiny_model_flags(), "--images", str(tmp_path / "images")]
    assert main(["predict", *common, "--out", str(tmp_path / "default")]) == 0
    flags = ["--attention", "xformers", "--no-tf32", "--encoder-attention", "tf32"]
    flags += ["--out", str(tmp_path / "chosen")]
    assert main(["predict", *common, *flags]) == 0
    assert "does not run here" not in capsys.readouterr().err  # the CPU takes SDPA without a warning
    for name in ("segments.json", "cameras.json"):
        default, chosen = (json.loads((tmp_path / d / name).read_text()) for d in ("default", "chosen"))
        default.pop("timings_s", None), chosen.pop("timings_s", None)
        assert default == chosen, name
    for path in sorted((tmp_path / "default" / "panoptic").iterdir()):
        assert path.read_bytes() == (tmp_path / "chosen" / "panoptic" / path.name).read_bytes()
