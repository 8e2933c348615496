"""Small random PreprocessedScene objects for the store tests (no rendering involved)."""

from __future__ import annotations

import numpy as np
import pytest

from datasets.preprocess.result import FrameBlock, PreprocessedScene

CATEGORIES = [{"id": 0, "name": "wall", "isthing": 0}, {"id": 1, "name": "chair", "isthing": 1}]


def random_block(rng: np.random.Generator, camera: str, frames: int, height: int, width: int) -> FrameBlock:
    prefix = "DSC" if camera == "dslr" else "frame_"
    intrinsics = np.repeat(np.eye(3)[None], frames, axis=0)
    intrinsics[:, 0, 0] = rng.uniform(200, 300, frames)
    intrinsics[:, 1, 1] = intrinsics[:, 0, 0]
    intrinsics[:, 0, 2], intrinsics[:, 1, 2] = width / 2, height / 2
    poses = np.repeat(np.eye(4)[None], frames, axis=0)
    poses[:, :3, 3] = rng.normal(size=(frames, 3))
    return FrameBlock(
        camera=camera,
        names=[f"{prefix}{i:05d}" for i in range(frames)],
        images=rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8),
        depth_mm=rng.integers(0, 20000, (frames, height, width), dtype=np.uint16),
        panoptic=(rng.integers(0, 4, (frames, height, width)) * 256 + 1).astype(np.uint32),
        intrinsics=intrinsics,
        cam_to_world=poses,
    )


def random_scene(scene_id: str, seed: int = 0, dslr: int = 3, iphone: int = 2) -> PreprocessedScene:
    rng = np.random.default_rng(seed)
    blocks = {"dslr": random_block(rng, "dslr", dslr, 12, 16)}
    order = [("dslr", i) for i in range(dslr)]
    if iphone:
        blocks["iphone"] = random_block(rng, "iphone", iphone, 9, 12)
        order += [("iphone", i) for i in range(iphone)]
    total = len(order)
    pairs = np.array([[i, i + 1, 0.5 + 0.1 * i] for i in range(total - 1)], dtype=np.float64)
    segments = [{"id": 257, "instance_id": 1, "class_id": 1, "orig_class_name": "chair", "iscrowd": 0}]
    return PreprocessedScene(
        scene_id=scene_id,
        blocks=blocks,
        frame_order=order,
        pairs=pairs,
        segments=segments,
        categories=CATEGORIES,
        timings={"load": 0.25, "render": 1.5},
    )


@pytest.fixture
def make_scene():
    return random_scene


SCENE_HASHES = {"source_hash": "s", "config_hash": "c", "code_version": "v"}
"""Identity hashes for scenes written by the store tests (their values do not matter)."""


@pytest.fixture
def scene_store(tmp_path):
    """Writes a directory store at tmp_path/store holding random scenes (scene_id, seed, dslr, iphone)."""

    def write(*scenes: tuple[str, int, int, int]):
        from datasets.store import writer

        store = tmp_path / "store"
        writer.open_or_create_store(store)
        for scene_id, seed, dslr, iphone in scenes:
            writer.write_scene(store, random_scene(scene_id, seed=seed, dslr=dslr, iphone=iphone), **SCENE_HASHES)
        return store

    return write
