"""COCO panoptic files (JSON + RGB PNGs with id = R + 256 G + 65536 B) -> PQ inputs, and PQ of two sets.

Follows panopticapi's conventions: the PNG folder defaults to the JSON path without `.json`; images are
paired by `image_id`; every GT image needs a prediction; categories (and `isthing`) come from the GT JSON;
GT segment areas come from the JSON `area` field.

For `--mode scene`, images are grouped into scenes by: the annotation's `scene_id` key if present, else
the folder part of `file_name` (`scene0/frame_001.png` -> `scene0`), else the file stem up to its last
underscore (`scene0_001.png` -> `scene0`), else the whole stem. Views keep the GT JSON order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from datasets.segment_colors import rgb_to_ids
from panst3r_core.metrics.coco_pq import PanopticImage, Segment, check_prediction, coco_pq
from panst3r_core.metrics.panoptic_to_scene import VOID_CLASS, scene_from_panoptic
from panst3r_core.metrics.result import PQResult
from panst3r_core.metrics.scene_pq import ScenePQOptions, scene_pq

MODES = ("coco", "scene")


@dataclass
class CocoPanopticSet:
    """One COCO panoptic JSON and its PNG folder."""

    json_path: Path
    folder: Path
    annotations: dict[Any, dict[str, Any]]
    """image_id -> annotation, in JSON order."""
    categories: dict[int, bool]
    """category id -> isthing, in JSON order (empty if the JSON lists none)."""
    category_names: dict[int, str]


def _require(mapping: dict, key: str, where: str, path: Path) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise ValueError(
            f"{path}: {where} has no `{key}` field; every {where} needs one (COCO panoptic format)"
        )
    return mapping[key]


def read_coco_panoptic(
    json_path: str | Path, folder: str | Path | None = None, is_gt: bool = False
) -> CocoPanopticSet:
    """Read and check a COCO panoptic JSON (GT: segments need `area`; `iscrowd` defaults to 0)."""
    json_path = Path(json_path)
    if not json_path.is_file():
        raise FileNotFoundError(f"COCO panoptic JSON not found: {json_path}")
    try:
        document = json.loads(json_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{json_path}: not valid JSON ({exc})") from None
    folder = Path(folder) if folder is not None else json_path.with_suffix("")
    if not folder.is_dir():
        raise FileNotFoundError(
            f"PNG folder of {json_path} not found: {folder} (pass it with the folder flag)"
        )
    annotations: dict[Any, dict[str, Any]] = {}
    for index, annotation in enumerate(_require(document, "annotations", "the document", json_path)):
        where = f"annotations[{index}]"
        image_id = _require(annotation, "image_id", where, json_path)
        _require(annotation, "file_name", where, json_path)
        for k, segment in enumerate(_require(annotation, "segments_info", where, json_path)):
            _require(segment, "id", f"{where}.segments_info[{k}]", json_path)
            _require(segment, "category_id", f"{where}.segments_info[{k}]", json_path)
            if is_gt:
                _require(segment, "area", f"GT {where}.segments_info[{k}]", json_path)
        annotations[image_id] = annotation
    categories, names = {}, {}
    for index, category in enumerate(document.get("categories", [])):
        category_id = int(_require(category, "id", f"categories[{index}]", json_path))
        categories[category_id] = bool(category.get("isthing", 0) == 1)
        names[category_id] = str(category.get("name", category_id))
    if is_gt and not categories:
        raise ValueError(f"{json_path}: the GT JSON lists no `categories`; they define the classes to score")
    return CocoPanopticSet(json_path, folder, annotations, categories, names)


def _segments(annotation: dict[str, Any]) -> list[Segment]:
    return [
        Segment(
            id=int(s["id"]),
            category_id=int(s["category_id"]),
            iscrowd=int(s.get("iscrowd", 0)) == 1,
            area=int(s["area"]) if "area" in s else None,
        )
        for s in annotation["segments_info"]
    ]


def load_image(dataset: CocoPanopticSet, image_id: Any) -> PanopticImage:
    """The id map (PNG) and segments of one image."""
    annotation = dataset.annotations[image_id]
    png = dataset.folder / annotation["file_name"]
    if not png.is_file():
        raise FileNotFoundError(f"PNG of image {image_id} listed in {dataset.json_path} not found: {png}")
    with Image.open(png) as image:
        rgb = np.asarray(image.convert("RGB"))
    return PanopticImage(
        ids=rgb_to_ids(rgb).astype(np.int64), segments=_segments(annotation), image_id=image_id
    )


def image_pairs(gt: CocoPanopticSet, pred: CocoPanopticSet) -> Iterator[tuple[PanopticImage, PanopticImage]]:
    """(GT, prediction) images in GT order; a GT image without prediction is an error."""
    for image_id in gt.annotations:
        if image_id not in pred.annotations:
            raise ValueError(
                f"{pred.json_path}: no prediction for the image with id {image_id!r} (in {gt.json_path})"
            )
        yield load_image(gt, image_id), load_image(pred, image_id)


def scene_key(annotation: dict[str, Any]) -> str:
    """Scene of an image: `scene_id`, else the folder of `file_name`, else the stem before its last `_`."""
    if "scene_id" in annotation:
        return str(annotation["scene_id"])
    path = PurePosixPath(str(annotation["file_name"]).replace("\\", "/"))
    if str(path.parent) not in ("", "."):
        return str(path.parent)
    stem = path.stem
    return stem.rsplit("_", 1)[0] if "_" in stem else stem


def group_by_scene(gt: CocoPanopticSet) -> dict[str, list[Any]]:
    """scene -> its GT image ids, in JSON order."""
    scenes: dict[str, list[Any]] = {}
    for image_id, annotation in gt.annotations.items():
        scenes.setdefault(scene_key(annotation), []).append(image_id)
    return scenes


def evaluate_coco_panoptic(
    gt_json: str | Path,
    pred_json: str | Path,
    gt_folder: str | Path | None = None,
    pred_folder: str | Path | None = None,
    mode: str = "coco",
    scene_options: ScenePQOptions | None = None,
    crowd_as_void: bool = False,
) -> PQResult:
    """PQ of a prediction set against a GT set, `coco` (panopticapi) or `scene` (Panoptic Lifting) mode.

    In scene mode void (id 0) plays Panoptic Lifting's class 0: GT void pixels are deleted from both sides
    (`drop_gt_classes` = (0,) refers to it) and predicted void is a stuff class of its own.
    """
    if mode not in MODES:
        raise ValueError(f"unknown PQ mode {mode!r}; choose from {', '.join(MODES)}")
    gt = read_coco_panoptic(gt_json, gt_folder, is_gt=True)
    pred = read_coco_panoptic(pred_json, pred_folder)
    if mode == "coco":
        return coco_pq(image_pairs(gt, pred), gt.categories)
    options = scene_options or ScenePQOptions()
    options = replace(
        options, drop_gt_classes=tuple(VOID_CLASS if c == 0 else c for c in options.drop_gt_classes)
    )
    things = {c for c, isthing in gt.categories.items() if isthing}
    stuff = {c for c, isthing in gt.categories.items() if not isthing}
    scenes = []
    for name, image_ids in group_by_scene(gt).items():
        pairs = []
        for image_id in image_ids:
            if image_id not in pred.annotations:
                raise ValueError(f"{pred.json_path}: no prediction for the image with id {image_id!r}")
            pairs.append((load_image(gt, image_id), load_image(pred, image_id)))
        for _, pred_image in pairs:  # the same sanity checks as coco mode
            check_prediction(pred_image, gt.categories)
        scenes.append(scene_from_panoptic(name, pairs, crowd_as_void))
    return scene_pq(scenes, things, stuff, options)
