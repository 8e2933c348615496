"""Write a store in the official PanSt3R preprocessed layout, so the official training code can read it.

    OUT/all_metadata.npz, OUT/categories.json,
    OUT/<scene>/{images/<stem>.jpg, depth/<stem>.png, panoptic/<stem>.png, panoptic_vis/<stem>.png,
                 segments.json, scene_metadata.npz}

Formats (scannetpp_format.md 2.3 steps 7-9 and 2.5): JPEG quality 75 written by PIL; depth 16-bit
greyscale PNG in millimetres, 0 = invalid; panoptic 8-bit RGB PNG with id = R + 256 G + 65536 B.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from datasets.store.reader import StoreReader

log = logging.getLogger(__name__)

JPEG_QUALITY = 75


@dataclass(frozen=True)
class ExportSummary:
    out: Path
    scenes: list[str]
    frames: int


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """(H, W) integer ids -> (H, W, 3) uint8 with R = id % 256, G = (id // 256) % 256, B = id // 65536."""
    ids = ids.astype(np.uint32)
    return np.stack([ids % 256, (ids // 256) % 256, (ids // 65536) % 256], axis=-1).astype(np.uint8)


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) uint32 ids; the inverse of `id_to_rgb`."""
    rgb = rgb.astype(np.uint32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def panoptic_visualisation(ids: np.ndarray) -> np.ndarray:
    """(H, W) ids -> (H, W, 3) uint8 colours, one stable colour per id (void black). Not read by training."""
    unique, inverse = np.unique(ids, return_inverse=True)
    # Knuth's multiplicative hash spreads neighbouring ids over distinct colours, the same on every run.
    hashed = (unique.astype(np.uint64) * np.uint64(2654435761)) & np.uint64(0xFFFFFF)
    palette = np.stack([(hashed >> np.uint64(s)) & np.uint64(255) for s in (16, 8, 0)], axis=-1).astype(
        np.uint8
    )
    palette[unique == 0] = 0
    return palette[inverse.reshape(ids.shape)]


def _write_png(path: Path, array: np.ndarray) -> None:
    # cv2 writes 16-bit greyscale PNGs (PIL would need mode juggling); colour input is RGB, cv2 wants BGR.
    data = array[..., ::-1] if array.ndim == 3 else array
    if not cv2.imwrite(str(path), np.ascontiguousarray(data)):
        raise OSError(f"could not write {path}")


def export_scene(reader: StoreReader, scene_id: str, out: Path) -> dict[str, np.ndarray]:
    """Write one scene's folder; returns its metadata arrays (as in scene_metadata.npz)."""
    scene_dir = out / scene_id
    for sub in ("images", "depth", "panoptic", "panoptic_vis"):
        (scene_dir / sub).mkdir(parents=True, exist_ok=True)
    attrs = reader.scene_attrs(scene_id)
    num = reader.num_frames(scene_id)
    names, trajectories, intrinsics = [], np.zeros((num, 4, 4)), np.zeros((num, 3, 3))
    for index in range(num):
        frame = reader.read_frame(scene_id, index)
        stem = frame["name"]
        Image.fromarray(frame["image"]).save(scene_dir / "images" / f"{stem}.jpg", quality=JPEG_QUALITY)
        _write_png(scene_dir / "depth" / f"{stem}.png", frame["depth_mm"].astype(np.uint16))
        if frame["panoptic"].size and int(frame["panoptic"].max()) >= 1 << 24:
            raise ValueError(
                f"scene {scene_id} frame {stem}: panoptic id {int(frame['panoptic'].max())} does not fit the "
                "official 24-bit RGB encoding; lower cls_sep or the number of instances"
            )
        _write_png(scene_dir / "panoptic" / f"{stem}.png", id_to_rgb(frame["panoptic"]))
        _write_png(scene_dir / "panoptic_vis" / f"{stem}.png", panoptic_visualisation(frame["panoptic"]))
        names.append(stem)
        trajectories[index] = frame["cam_to_world"]
        intrinsics[index] = frame["intrinsics"]
    (scene_dir / "segments.json").write_text(json.dumps(attrs.get("segments", []), indent=1))
    metadata = {
        "trajectories": trajectories,
        "intrinsics": intrinsics,
        "images": np.array(names, dtype=str),  # a <U array: the loaders np.load without allow_pickle
        "pairs": reader.pairs(scene_id),
        "cls_sep": np.int64(reader.cls_sep()),
    }
    np.savez(scene_dir / "scene_metadata.npz", **metadata)
    return metadata


def export_legacy(
    store: str | Path,
    out: str | Path,
    scenes: list[str] | None = None,
    on_scene: Callable[[str], None] | None = None,
) -> ExportSummary:
    """Export committed scenes (all, or `scenes`) of `store` into `out`; writes all_metadata.npz last."""
    reader = StoreReader(store)
    available = reader.scene_ids()
    if not available:
        raise ValueError(f"store {store} has no committed scene; run `panst3r preprocess` first")
    selected = available if not scenes else [s for s in available if s in set(scenes)]
    missing = sorted(set(scenes or []) - set(available))
    if missing:
        raise ValueError(f"store {store} has no committed scene {', '.join(missing)}; see `panst3r status`")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # categories.json comes first, as in the official script.
    (out / "categories.json").write_text(json.dumps(reader.categories(), indent=1))
    counts, scene_index, images, intrinsics, trajectories, pairs = [], [], [], [], [], []
    offset = 0
    for number, scene_id in enumerate(selected):
        metadata = export_scene(reader, scene_id, out)
        count = len(metadata["images"])
        counts.append(offset)
        scene_index.append(np.full(count, number, dtype=np.int64))
        images.append(metadata["images"])
        intrinsics.append(metadata["intrinsics"])
        trajectories.append(metadata["trajectories"])
        scene_pairs = metadata["pairs"].copy()
        scene_pairs[:, :2] += offset  # global image indices
        pairs.append(scene_pairs)
        offset += count
        if on_scene is not None:
            on_scene(scene_id)
    np.savez(
        out / "all_metadata.npz",
        counts=np.array(counts, dtype=np.int64),
        scenes=np.array(selected, dtype=str),
        sceneids=np.concatenate(scene_index),
        images=np.concatenate(images),
        intrinsics=np.concatenate(intrinsics),
        trajectories=np.concatenate(trajectories),
        pairs=np.concatenate(pairs),
        cls_sep=np.int64(reader.cls_sep()),
    )
    log.info("exported %d scenes (%d frames) to %s", len(selected), offset, out)
    return ExportSummary(out=out, scenes=list(selected), frames=offset)
