import json

import numpy as np
import pytest
from PIL import Image

from datasets.coco_panoptic import (
    evaluate_coco_panoptic,
    group_by_scene,
    read_coco_panoptic,
    scene_key,
)
from datasets.segment_colors import ids_to_rgb
from panst3r_core.metrics.scene_pq import ScenePQOptions, nearest_source_indices

CATEGORIES = [{"id": 1, "name": "obj", "isthing": 1}, {"id": 2, "name": "wall", "isthing": 0}]


def write_set(root, name, images, categories=CATEGORIES, gt=True):
    """images: list of (file_name, ids (H, W), {segment id: category}); writes name.json and name/ PNGs."""
    folder = root / name
    annotations = []
    for index, (file_name, ids, segments) in enumerate(images):
        ids = np.asarray(ids)
        path = folder / file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(ids_to_rgb(ids)).save(path)
        infos = []
        for segment_id, category in segments.items():
            info = {"id": segment_id, "category_id": category}
            if gt:
                info.update(iscrowd=0, area=int((ids == segment_id).sum()))
            infos.append(info)
        annotations.append({"image_id": index, "file_name": file_name, "segments_info": infos})
    document = {"annotations": annotations, "categories": categories}
    (root / f"{name}.json").write_text(json.dumps(document))
    return root / f"{name}.json"


def test_reads_pngs_with_24_bit_ids_and_the_default_folder(tmp_path):
    ids = np.array([[0, 1, 70000, 70000]])
    json_path = write_set(tmp_path, "gt", [("a.png", ids, {1: 1, 70000: 2})])
    dataset = read_coco_panoptic(json_path, is_gt=True)
    assert dataset.folder == tmp_path / "gt"
    assert dataset.categories == {1: True, 2: False}
    from datasets.coco_panoptic import load_image

    image = load_image(dataset, 0)
    assert np.array_equal(image.ids, ids)
    assert [(s.id, s.category_id, s.area) for s in image.segments] == [(1, 1, 1), (70000, 2, 2)]


def test_coco_mode_on_files_matches_the_hand_computed_case_B(tmp_path):
    gt = write_set(tmp_path, "gt", [("x.png", [[1, 1, 1, 1, 2, 2, 2, 2, 2, 2]], {1: 1, 2: 2})])
    pred = write_set(tmp_path, "pred", [("x.png", [[0, 0, 0, 5, 6, 6, 6, 6, 6, 6]], {5: 1, 6: 2})], gt=False)
    result = evaluate_coco_panoptic(gt, pred)
    assert result.all.pq == pytest.approx(0.5)
    assert result.to_dict()["per_class"][2]["pq"] == pytest.approx(1.0)


def test_scene_key_rule():
    assert scene_key({"file_name": "a_1.png", "scene_id": "s9"}) == "s9"
    assert scene_key({"file_name": "scene0/frame_001.png"}) == "scene0"
    assert scene_key({"file_name": "scene0_001.png"}) == "scene0"
    assert scene_key({"file_name": "my_scene_0001.png"}) == "my_scene"
    assert scene_key({"file_name": "single.png"}) == "single"


def test_scene_mode_concatenates_the_views_of_each_scene(tmp_path):
    gt_ids = [[1] * 5 + [2] * 5]
    images_gt = [(f"{s}_{v}.png", gt_ids, {1: 1, 2: 2}) for s in ("good", "bad") for v in range(2)]
    pred_ids = {"good": [5, 5], "bad": [5, 6]}  # the object id of each view
    images_pred = [
        (f"{s}_{v}.png", [[pred_ids[s][v]] * 5 + [9] * 5], {pred_ids[s][v]: 1, 9: 2})
        for s in ("good", "bad")
        for v in range(2)
    ]
    gt = write_set(tmp_path, "gt", images_gt)
    pred = write_set(tmp_path, "pred", images_pred, gt=False)
    assert group_by_scene(read_coco_panoptic(gt, is_gt=True)) == {"good": [0, 1], "bad": [2, 3]}
    result = evaluate_coco_panoptic(gt, pred, mode="scene")
    assert result.per_scene["good"].all.pq == pytest.approx(1.0)
    assert result.per_scene["bad"].all.pq == pytest.approx(0.5)  # inconsistent ids across views
    assert result.all.pq == pytest.approx(0.75)
    # per image (coco mode) the inconsistency is invisible
    assert evaluate_coco_panoptic(gt, pred, mode="coco").all.pq == pytest.approx(1.0)


def test_scene_mode_deletes_gt_void_and_scores_predicted_void_as_a_class(tmp_path):
    gt = write_set(tmp_path, "gt", [("s_0.png", [[0] * 5 + [1] * 95], {1: 1})])
    # predicted void on 10 % of the GT object: a stuff class of its own (FP), IoU(obj) = 85 / 95
    pred = write_set(tmp_path, "pred", [("s_0.png", [[3] * 5 + [0] * 10 + [3] * 85], {3: 1})], gt=False)
    result = evaluate_coco_panoptic(gt, pred, mode="scene")
    assert result.all.n == 1 and result.per_scene["s"].all.n == 2
    # after the 100 -> 512 nearest resize: IoU = |source columns 15..99| / |source columns 5..99|
    columns = nearest_source_indices(100, 512)
    iou = np.float32((columns >= 15).sum()) / np.float32((columns >= 5).sum())
    assert result.all.pq == pytest.approx((float(iou) + 0.0) / 2, rel=1e-6)
    native = evaluate_coco_panoptic(gt, pred, mode="scene", scene_options=ScenePQOptions(resize_to=None))
    assert native.all.pq == pytest.approx((85 / 95 + 0.0) / 2, rel=1e-6)


def test_errors_name_the_file_and_field(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        read_coco_panoptic(tmp_path / "missing.json")
    gt = write_set(tmp_path, "gt", [("x.png", [[1, 1]], {1: 1})])
    bad = json.loads(gt.read_text())
    del bad["annotations"][0]["segments_info"][0]["area"]
    (tmp_path / "noarea.json").write_text(json.dumps(bad))
    (tmp_path / "noarea").mkdir()
    with pytest.raises(
        ValueError, match=r"noarea.json: GT annotations\[0\].segments_info\[0\] has no `area`"
    ):
        read_coco_panoptic(tmp_path / "noarea.json", is_gt=True)
    empty_pred = tmp_path / "pred.json"
    empty_pred.write_text(json.dumps({"annotations": []}))
    (tmp_path / "pred").mkdir()
    with pytest.raises(ValueError, match="no prediction for the image with id 0"):
        evaluate_coco_panoptic(gt, empty_pred)
    (tmp_path / "gt" / "x.png").unlink()
    pred = write_set(tmp_path, "pred2", [("x.png", [[1, 1]], {1: 1})], gt=False)
    with pytest.raises(FileNotFoundError, match="x.png"):
        evaluate_coco_panoptic(gt, pred)
    with pytest.raises(ValueError, match="unknown PQ mode"):
        evaluate_coco_panoptic(gt, pred, mode="image")
