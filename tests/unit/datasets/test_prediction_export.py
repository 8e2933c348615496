import json
import struct

import numpy as np
import pytest
import trimesh
from PIL import Image

from datasets.prediction_export import ExportOptions, export_reconstruction, raw_arrays
from datasets.segment_colors import ids_to_rgb, rgb_to_ids
from panst3r_core.reconstruction import PanopticReconstruction, Segment


def _reconstruction(shapes=((6, 8), (6, 8))) -> PanopticReconstruction:
    """Two views of a fronto-parallel plane at depth 2; segment 1 = left half, 2 = right-bottom block."""
    rng = np.random.default_rng(0)
    images, pans, confs, pts, local, conf = [], [], [], [], [], []
    c2ws = []
    for v, (h, w) in enumerate(shapes):
        images.append(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        pan = np.zeros((h, w), np.int32)
        pan[:, : w // 2] = 1
        pan[h // 2 :, w - 2 :] = 2
        pans.append(pan)
        confs.append(np.where(pan > 0, 0.9, 0.1).astype(np.float32))
        ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        loc = np.stack([(xs - w / 2) / 10.0, (ys - h / 2) / 10.0, np.full((h, w), 2.0)], -1).astype(
            np.float32
        )
        c2w = np.eye(4, dtype=np.float32)
        c2w[0, 3] = float(v)
        local.append(loc)
        pts.append(loc + c2w[:3, 3])
        c = np.full((h, w), 5.0, np.float32)
        c[0, 0] = 1.5  # below the default 3.0 threshold: left out of the point cloud
        conf.append(c)
        c2ws.append(c2w)
    segments = [
        Segment(1, 4, 2, "chair", 0.9, [int((p == 1).sum()) for p in pans]),
        Segment(2, 7, 0, "wall", 0.6, [int((p == 2).sum()) for p in pans]),
    ]
    return PanopticReconstruction(
        images=images,
        panoptic=pans,
        panoptic_conf=confs,
        pts3d=pts,
        pts3d_local=local,
        confidence=conf,
        focal=np.array([10.0, 11.0], np.float32),
        cam_to_world=np.stack(c2ws),
        segments=segments,
        class_names=["wall", "floor", "chair"],
        keyframes=[0, 1],
        postprocess="standard_v2",
        timings={"encoder": 0.5},
        view_names=["a", "b"],
        raw={"pred_logits": np.zeros((1, 12, 3), np.float32)},
    )


def test_every_file_is_written_and_consistent(tmp_path):
    recon = _reconstruction()
    files = export_reconstruction(recon, tmp_path / "out", ExportOptions(raw=True))

    # PNG ids round-trip exactly and match segments.json areas
    doc = json.loads(files.segments_json.read_text())
    assert doc["views"] == ["a", "b"] and doc["class_names"] == ["wall", "floor", "chair"]
    for v, png in enumerate(files.panoptic_pngs):
        assert png.name == ["a.png", "b.png"][v]
        ids = rgb_to_ids(np.asarray(Image.open(png)))
        np.testing.assert_array_equal(ids, recon.panoptic[v])
        for seg in doc["segments"]:
            assert seg["area_per_view"][v] == int((ids == seg["id"]).sum())
    assert {s["id"] for s in doc["segments"]} == {1, 2}
    assert doc["segments"][0]["class_name"] == "chair" and doc["segments"][0]["area"] == 48

    # visualisation: unlabelled pixels keep the image, labelled ones are tinted
    vis = np.asarray(Image.open(files.visualisations[0]))
    assert vis.shape == (6, 8, 3)
    void = recon.panoptic[0] == 0
    np.testing.assert_array_equal(vis[void], recon.images[0][void])
    assert not np.array_equal(vis[~void], recon.images[0][~void])

    # COCO panoptic JSON lists, per image, exactly the ids in its PNG
    coco = json.loads(files.coco_json.read_text())
    for ann, pan in zip(coco["annotations"], recon.panoptic):
        assert sorted(s["id"] for s in ann["segments_info"]) == sorted(set(np.unique(pan)) - {0})
    assert [c["name"] for c in coco["categories"]] == recon.class_names

    cams = json.loads(files.cameras_json.read_text())["cameras"]
    assert cams[1]["focal"] == pytest.approx(11.0)
    assert cams[1]["principal_point"] == [4.0, 3.0]
    np.testing.assert_allclose(cams[1]["cam_to_world"], recon.cam_to_world[1])

    # PLY: every point with confidence >= 3 (two pixels are below), coloured per segment, labels in header
    ply = trimesh.load(files.ply)
    assert isinstance(ply, trimesh.PointCloud)
    assert len(ply.vertices) == files.num_points == 2 * 48 - 2
    header = files.ply.read_bytes().split(b"end_header")[0].decode()
    assert "comment segment 1 chair" in header and "comment segment 2 wall" in header
    vertex = ply.metadata["_ply_raw"]["vertex"]["data"]
    seg_col = vertex["segment"]
    colors = np.stack([vertex["red"], vertex["green"], vertex["blue"]], 1)
    for seg_id in (0, 1, 2):
        assert len(np.unique(colors[seg_col == seg_id], axis=0)) == 1
    assert len(np.unique(colors, axis=0)) == 3
    # points = c2w @ local: view 1 is shifted by +1 in x
    np.testing.assert_allclose(np.asarray(ply.vertices)[seg_col >= 0].min(0)[2], 2.0, atol=1e-6)

    # GLB: one node per segment (+ void) with labels in extras, one frustum per camera
    scene = trimesh.load(files.glb)
    assert isinstance(scene, trimesh.Scene)
    gltf = _gltf_json(files.glb)
    node_extras = {n["name"]: n.get("extras", {}) for n in gltf["nodes"]}
    assert node_extras["segment_0001_chair"]["class_name"] == "chair"
    assert node_extras["segment_0002_wall"]["segment_id"] == 2
    assert "void" in node_extras and "camera_0000" in node_extras and "camera_0001" in node_extras
    total = sum(len(g.vertices) for n, g in scene.geometry.items() if n.startswith(("segment", "void")))
    assert total == files.num_points

    raw = np.load(files.raw_npz)
    assert raw["pts3d"].shape == (2, 6, 8, 3) and raw["pts3d_local"].shape == (2, 6, 8, 3)
    assert raw["conf"].shape == (2, 6, 8) and raw["focal"].shape == (2,) and raw["c2w"].shape == (2, 4, 4)
    assert raw["pred_logits"].shape == (1, 12, 3)
    np.testing.assert_array_equal(raw["segments"], [[1, 4, 2], [2, 7, 0]])


def _gltf_json(path):
    data = path.read_bytes()
    length = struct.unpack("<I", data[12:16])[0]
    return json.loads(data[20 : 20 + length])


def test_ragged_views_are_stored_per_view_and_names_made_unique(tmp_path):
    recon = _reconstruction(shapes=((6, 8), (8, 6)))
    recon.view_names = ["same", "same"]
    files = export_reconstruction(recon, tmp_path, ExportOptions(raw=False, include_void=False))
    assert [p.name for p in files.panoptic_pngs] == ["0000_same.png", "0001_same.png"]
    assert files.raw_npz is None
    # labelled pixels only, minus the low-confidence pixel (0, 0) of each view (it lies in segment 1)
    assert files.num_points == int(sum((p > 0).sum() for p in recon.panoptic)) - 2
    arrays = raw_arrays(recon)
    assert arrays["pts3d_0"].shape == (6, 8, 3) and arrays["pts3d_1"].shape == (8, 6, 3)
    assert "pts3d" not in arrays


def test_thinning_and_id_encoding():
    recon = _reconstruction()
    from datasets.point_cloud_export import gather_points

    points = gather_points(recon, min_confidence=0.0, max_points=10)
    assert len(points.xyz) <= 10 and len(points.xyz) > 0
    ids = np.array([[0, 1, 255, 256, 65536, 16777215]])
    np.testing.assert_array_equal(rgb_to_ids(ids_to_rgb(ids)), ids)
    with pytest.raises(ValueError, match="segment ids"):
        ids_to_rgb(np.array([[-1]]))


def test_output_path_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        export_reconstruction(_reconstruction(), target)


def test_parallel_export_writes_the_same_bytes_as_one_thread(tmp_path):
    recon = _reconstruction()
    one = export_reconstruction(recon, tmp_path / "one", ExportOptions(threads=1))
    many = export_reconstruction(recon, tmp_path / "many", ExportOptions(threads=4))
    written = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert written == sorted(p.relative_to(tmp_path / "many") for p in (tmp_path / "many").rglob("*") if p.is_file())
    assert len(written) == 2 * 2 + 5  # panoptic and panoptic_vis per view, 3 JSON files, PLY, GLB
    for relative in written:
        assert (tmp_path / "one" / relative).read_bytes() == (tmp_path / "many" / relative).read_bytes(), relative
    assert one.num_points == many.num_points and len(many.panoptic_pngs) == 2
