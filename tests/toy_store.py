"""Test support: a small store of procedurally drawn scenes, written without rendering (the unit tests and
`tests/benchmarks/loader.py` use it; `import toy_store` works in tests because pytest puts tests/ on sys.path).

Each scene is a wide canvas of textured rectangles (one instance each, classes by colour) on a wall; frames
are windows sliding along it, so instance ids are shared across views and neighbouring frames overlap as
real pairs do. It has the exact layout `panst3r preprocess` writes (Zarr groups + Parquet tables).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datasets.preprocess.result import FrameBlock, PreprocessedScene
from datasets.store.schema import DEFAULT_CLS_SEP
from datasets.store.tables import TableBuilder
from datasets.store.writer import open_or_create_store, set_categories, write_scene

TOY_CLASSES = ["wall", "floor", "chair", "table", "lamp", "sofa", "shelf", "plant"]
_CLASS_COLOURS = np.array(
    [
        [200, 200, 190],
        [120, 90, 60],
        [200, 40, 40],
        [40, 160, 40],
        [240, 220, 40],
        [40, 60, 200],
        [160, 60, 200],
        [40, 200, 200],
    ],
    dtype=np.float64,
)


def _draw_canvas(rng: np.random.Generator, width: int, height: int, num_objects: int, cls_sep: int):
    """(H, W, 3) uint8 canvas and (H, W) uint32 panoptic ids; the floor is the bottom quarter."""
    ids = np.full((height, width), 1 * cls_sep + 0, dtype=np.uint32)  # instance 1: the wall
    floor = int(height * 0.75)
    ids[floor:] = 2 * cls_sep + 1  # instance 2: the floor
    for number in range(num_objects):
        cls = int(rng.integers(2, len(TOY_CLASSES)))
        w = int(rng.integers(width // 12, width // 6))
        h = int(rng.integers(height // 5, height // 2))
        x0 = int(rng.integers(0, width - w))
        y0 = int(rng.integers(height // 8, floor - h // 2))
        ids[y0 : y0 + h, x0 : x0 + w] = (3 + number) * cls_sep + cls
    colours = _CLASS_COLOURS[ids % cls_sep]
    noise = rng.normal(0.0, 12.0, size=(height, width, 1))
    canvas = np.clip(colours + noise, 0, 255).astype(np.uint8)
    return canvas, ids


def toy_scene(
    scene_id: str,
    seed: int,
    frames: int = 6,
    image_size: tuple[int, int] = (160, 120),
    step: int | None = None,
    cls_sep: int = DEFAULT_CLS_SEP,
) -> PreprocessedScene:
    """One scene of `frames` views of image_size (W, H), each `step` pixels to the right of the previous;
    panoptic ids are instance * cls_sep + class."""
    width, height = image_size
    step = step or width // 4
    rng = np.random.default_rng(seed)
    canvas, canvas_ids = _draw_canvas(rng, width + step * (frames - 1), height, 3 + frames, cls_sep)
    images = np.stack([canvas[:, i * step : i * step + width] for i in range(frames)])
    panoptic = np.stack([canvas_ids[:, i * step : i * step + width] for i in range(frames)])
    depth_mm = np.full((frames, height, width), 2000, dtype=np.uint16)
    focal = float(width)
    intrinsics = np.tile(
        np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], dtype=np.float64), (frames, 1, 1)
    )
    cam_to_world = np.tile(np.eye(4), (frames, 1, 1))
    cam_to_world[:, 0, 3] = np.arange(frames) * step * 2.0 / focal  # metres at 2 m depth
    names = [f"frame_{i:06d}" for i in range(frames)]
    pairs = [
        (a, b, 1.0 - (b - a) * step / width)
        for a in range(frames)
        for b in range(a + 1, frames)
        if (b - a) * step < width
    ]
    segments = [
        {
            "id": int(i),
            "instance_id": int(i // cls_sep),
            "class_id": int(i % cls_sep),
            "orig_class_name": TOY_CLASSES[int(i % cls_sep)],
            "iscrowd": 0,
        }
        for i in np.unique(panoptic)
    ]
    block = FrameBlock("iphone", names, images, depth_mm, panoptic, intrinsics, cam_to_world)
    return PreprocessedScene(
        scene_id=scene_id,
        blocks={"iphone": block},
        frame_order=[("iphone", i) for i in range(frames)],
        pairs=np.asarray(pairs, dtype=np.float64).reshape(-1, 3),
        segments=segments,
        categories=toy_categories(),
    )


def toy_categories(names: list[str] | None = None) -> list[dict]:
    return [{"id": i, "name": name, "isthing": i >= 2} for i, name in enumerate(names or TOY_CLASSES)]


def write_toy_store(
    store: str | Path,
    scenes: int = 2,
    frames: int = 6,
    image_size: tuple[int, int] = (160, 120),
    seed: int = 0,
    split: str = "",
    class_names: list[str] | None = None,
    cls_sep: int = DEFAULT_CLS_SEP,
) -> Path:
    """Write (or extend) a store of `scenes` toy scenes and its tables; returns the store path.

    `class_names` renames the classes (same count as TOY_CLASSES), to make stores with other vocabularies;
    `cls_sep` is recorded in the root attrs as preprocessing does."""
    store = Path(store)
    open_or_create_store(store)
    categories = toy_categories(class_names)
    if len(categories) != len(TOY_CLASSES):
        raise ValueError(f"class_names: give {len(TOY_CLASSES)} names, got {len(categories)}")
    for number in range(scenes):
        scene = toy_scene(
            f"toy{seed:03d}_{number:02d}", seed * 1000 + number, frames, image_size, cls_sep=cls_sep
        )
        scene.categories = categories
        write_scene(
            store,
            scene,
            source_hash=f"toy-{seed}-{number}",
            config_hash="toy",
            code_version="toy",
            split=split,
        )
    set_categories(store, categories, cls_sep=cls_sep)
    TableBuilder(store).write()
    return store


def write_toy_scene(store: str, scene_id: str, seed: int, frames: int = 6) -> None:
    """Commit `toy_scene(scene_id, seed, frames)` into `store` (a path or a URL): the target of the writer
    processes of the concurrency tests, importable in a spawned child."""
    write_scene(
        store,
        toy_scene(scene_id, seed, frames),
        source_hash=f"toy-{scene_id}",
        config_hash="toy",
        code_version="toy",
    )


def write_toy_store_and_model(folder: Path) -> tuple[Path, Path]:
    """Under `folder`: a store of two toy scenes of 3 views (96x64) and a tiny_v1 checkpoint (seed 0) with
    hashed text embeddings, the inputs of the batch-prediction tests."""
    import torch

    from panst3r_core.checkpoint.ours import save_checkpoint
    from panst3r_core.model.variants import build_model

    store = write_toy_store(folder / "store", scenes=2, frames=3, image_size=(96, 64))
    torch.manual_seed(0)
    model = save_checkpoint(build_model("tiny_v1"), folder / "model", metadata={"text_embeddings": "hashed"})
    return store, model
