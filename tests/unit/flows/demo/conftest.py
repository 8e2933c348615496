"""Shared helpers of the demo tests: synthetic images and a deterministic reconstruction of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from panst3r_core.reconstruction import PanopticReconstruction, Segment


def write_png(path: Path, seed: int, size: tuple[int, int] = (48, 64)) -> Path:
    """A small PNG with two flat halves (colours from `seed`) plus noise."""
    rng = np.random.default_rng(seed)
    h, w = size
    image = np.empty((h, w, 3), np.uint8)
    image[:, : w // 2] = rng.integers(0, 128, 3)
    image[:, w // 2 :] = rng.integers(128, 256, 3)
    image = np.clip(image.astype(int) + rng.integers(-5, 6, image.shape), 0, 255).astype(np.uint8)
    Image.fromarray(image).save(path)
    return path


def reconstruction_from_images(
    images: list[np.ndarray], class_names: list[str] | None = None
) -> PanopticReconstruction:
    """A geometrically consistent stand-in for the predictor's output, derived from the pixels.

    Segment 1 = dark pixels, segment 2 = bright pixels, points on planes at depth 1-2 (brightness),
    confidence 1 + 9 * brightness, cameras stepping along x.
    """
    class_names = class_names or ["wall", "chair"]
    panoptic, conf, local, world, areas = [], [], [], [], [[], []]
    c2w = np.tile(np.eye(4, dtype=np.float32), (len(images), 1, 1))
    focal = np.zeros(len(images), np.float32)
    for v, image in enumerate(images):
        h, w = image.shape[:2]
        brightness = image.astype(np.float32).mean(axis=2) / 255.0
        ids = np.where(brightness < 0.5, 1, 2).astype(np.int32)
        areas[0].append(int((ids == 1).sum()))
        areas[1].append(int((ids == 2).sum()))
        f = float(max(h, w))
        vv, uu = np.mgrid[0:h, 0:w].astype(np.float32)
        z = 1.0 + brightness
        pts_local = np.stack([(uu - w / 2) / f * z, (vv - h / 2) / f * z, z], axis=-1).astype(np.float32)
        c2w[v, 0, 3] = 0.1 * v
        panoptic.append(ids)
        conf.append((1.0 + 9.0 * brightness).astype(np.float32))
        local.append(pts_local)
        world.append(pts_local + c2w[v, :3, 3])
        focal[v] = f
    segments = [
        Segment(
            id=k + 1,
            query_id=k,
            class_id=k % len(class_names),
            class_name=class_names[k % len(class_names)],
            score=0.9 - 0.1 * k,
            area_per_view=areas[k],
        )
        for k in range(2)
    ]
    return PanopticReconstruction(
        images=[np.asarray(img, np.uint8) for img in images],
        panoptic=panoptic,
        panoptic_conf=[np.ones_like(c) for c in conf],
        pts3d=world,
        pts3d_local=local,
        confidence=conf,
        focal=focal,
        cam_to_world=c2w,
        segments=segments,
        class_names=list(class_names),
        keyframes=[0],
        postprocess="standard_v2",
        view_names=[f"view{v}" for v in range(len(images))],
    )


@pytest.fixture
def png_files(tmp_path: Path) -> list[Path]:
    return [write_png(tmp_path / f"img_{i}.png", seed=i) for i in range(3)]


@pytest.fixture
def reconstruction(png_files: list[Path]) -> PanopticReconstruction:
    return reconstruction_from_images([np.asarray(Image.open(p).convert("RGB")) for p in png_files])


@pytest.fixture
def make_png():
    return write_png


@pytest.fixture
def make_reconstruction():
    return reconstruction_from_images
