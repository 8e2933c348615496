"""Scene listing and the typed scene record of a ScanNet++ v2 root (real or synthetic).

`read_scene` resolves every path the preprocessing needs and parses the camera models and poses; it never
reads pixels or the mesh. The frame selection comes from `<pairs>/<scene>/selected_pairs.npz` when a pairs
folder is given, else it is every image of `dslr/colmap` followed by every image of `iphone/colmap`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datasets.scannetpp import colmap
from datasets.scannetpp.pairs import list_pair_scenes, read_selected_pairs, scene_pairs_path
from datasets.scannetpp.record import CameraModel, FrameRecord, SceneRecord

COLMAP_FILES = ("cameras.txt", "images.txt", "points3D.txt")
CLASS_LIST = "metadata/semantic_benchmark/top100.txt"
INSTANCE_LIST = "metadata/semantic_benchmark/top100_instance.txt"
MAPPING_FILE = "metadata/semantic_benchmark/map_benchmark.csv"
IPHONE_PREFIXES = ("iphone/", "video/")
DEVICE_LAYOUT = {
    # device: (image folder, mask folder, image extension) relative to the scene folder
    "dslr": ("dslr/resized_images", "dslr/resized_anon_masks", ".JPG"),
    "iphone": ("iphone/rgb", "iphone/rgb_masks", ".jpg"),
}


def list_scenes(root: str | Path, pairs_dir: str | Path | None = None) -> list[str]:
    """Scene ids: those of the pairs folder when given (scene_list.json or its sub-folders), else every
    sub-folder of ROOT/data, sorted."""
    root = Path(root)
    if pairs_dir is not None:
        return list_pair_scenes(pairs_dir)
    data = root / "data"
    if not data.is_dir():
        raise FileNotFoundError(f"ScanNet++ root {root} has no 'data' folder; pass the dataset root")
    return sorted(p.name for p in data.iterdir() if p.is_dir() and not p.name.startswith("."))


def device_of(name: str) -> str:
    """Official rule: a selection name containing 'frame_' is an iPhone frame, anything else DSLR."""
    return "iphone" if "frame_" in name else "dslr"


def strip_image_name(name: str) -> str:
    """COLMAP image NAME -> basename without extension (iPhone prefixes iphone/ and video/ removed)."""
    for prefix in IPHONE_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    stem, dot, _ = name.rpartition(".")
    return stem if dot else name


def _read_colmap(scene_dir: Path, device: str, required: bool):
    folder = scene_dir / device / "colmap"
    paths = [folder / f for f in COLMAP_FILES]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        if not required and len(missing) == len(paths):
            return {}, []
        raise FileNotFoundError(
            f"missing COLMAP file {missing[0]}; {folder} needs {', '.join(COLMAP_FILES)} "
            "(header-only files are fine when the device has no images)"
        )
    cameras = colmap.read_cameras(paths[0])
    images = colmap.read_images(paths[1])
    frames: dict[str, tuple[CameraModel, np.ndarray]] = {}
    for image in images.values():
        if image.camera_id not in cameras:
            raise ValueError(
                f"{paths[1]}: image {image.name!r} refers to CAMERA_ID {image.camera_id}, which "
                f"{paths[0]} does not define"
            )
        name = strip_image_name(image.name)
        if name in frames:
            raise ValueError(f"{paths[1]}: image name {name!r} appears twice (after removing prefixes)")
        cam_to_world = image.cam_to_world
        if not np.all(np.isfinite(cam_to_world)):
            raise ValueError(f"{paths[1]}: image {image.name!r} has a non-finite pose (field QW..TZ)")
        frames[name] = (cameras[image.camera_id], cam_to_world)
    return frames, paths


def read_scene(root: str | Path, scene_id: str, pairs_dir: str | Path | None = None) -> SceneRecord:
    """Resolve one scene. Raises FileNotFoundError / ValueError naming the scene, the file and the field."""
    root = Path(root)
    try:
        return _read_scene(root, scene_id, pairs_dir)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"scene {scene_id}: {exc}") from exc
    except ValueError as exc:
        raise ValueError(f"scene {scene_id}: {exc}") from exc


def _read_scene(root: Path, scene_id: str, pairs_dir: str | Path | None) -> SceneRecord:
    scene_dir = root / "data" / scene_id
    if not scene_dir.is_dir():
        raise FileNotFoundError(f"scene folder not found: {scene_dir}")
    scans = scene_dir / "scans"
    mesh_path = scans / "mesh_aligned_0.05.ply"
    segments_path = scans / "segments.json"
    segments_anno_path = scans / "segments_anno.json"
    for path in (mesh_path, segments_path, segments_anno_path):
        if not path.is_file():
            raise FileNotFoundError(f"missing scan file {path}")

    dslr_frames, dslr_files = _read_colmap(scene_dir, "dslr", required=True)
    iphone_frames, iphone_files = _read_colmap(scene_dir, "iphone", required=False)
    known = {"dslr": dslr_frames, "iphone": iphone_frames}

    pairs = None
    pairs_files: list[Path] = []
    if pairs_dir is not None:
        pairs_path = scene_pairs_path(pairs_dir, scene_id)
        selection, pairs = read_selected_pairs(pairs_path)
        pairs_files.append(pairs_path)
        # The official scripts process the DSLR images of the selection first, then the iPhone ones;
        # keep the file's order (the pair indices refer to it).
        origin = f"{pairs_path} field 'selection'"
    else:
        selection = sorted(dslr_frames) + sorted(iphone_frames)
        origin = "the COLMAP models"
    if not selection:
        raise ValueError(f"no frames: {origin} lists no image for scene folder {scene_dir}")

    frames: list[FrameRecord] = []
    for name in selection:
        device = device_of(name)
        if name not in known[device]:
            colmap_dir = scene_dir / device / "colmap"
            raise ValueError(f"{origin} lists {name!r}, which {colmap_dir / 'images.txt'} does not contain")
        camera, cam_to_world = known[device][name]
        image_dir, mask_dir, extension = DEVICE_LAYOUT[device]
        image_path = scene_dir / image_dir / f"{name}{extension}"
        mask_path = scene_dir / mask_dir / f"{name}.png"
        for path, what in ((image_path, "image"), (mask_path, "anonymisation mask")):
            if not path.is_file():
                raise FileNotFoundError(f"{what} of selected frame {name!r} not found: {path}")
        frames.append(
            FrameRecord(
                name=name,
                device=device,
                image_path=image_path,
                mask_path=mask_path,
                camera=camera,
                cam_to_world=cam_to_world,
            )
        )

    class_paths = [root / CLASS_LIST, root / INSTANCE_LIST, root / MAPPING_FILE]
    present = [p if p.is_file() else None for p in class_paths]
    source_files = [mesh_path, segments_path, segments_anno_path, *dslr_files, *iphone_files, *pairs_files]
    source_files += [p for p in present if p is not None]
    for frame in frames:
        source_files += [frame.image_path, frame.mask_path]
    return SceneRecord(
        scene_id=scene_id,
        root=root,
        scene_dir=scene_dir,
        mesh_path=mesh_path,
        segments_path=segments_path,
        segments_anno_path=segments_anno_path,
        frames=tuple(frames),
        pairs=None if pairs is None else np.asarray(pairs),
        class_list_path=present[0],
        instance_list_path=present[1],
        mapping_path=present[2],
        source_files=tuple(source_files),
    )
