"""`preprocess_scene`: one ScanNet++ scene in, arrays out (no files written), as the official script does it.

Per frame, in the official order: anonymise the RGB (mask == 0 -> black), undistort RGB and mask at the input
resolution, rescale to cover (target, 3/4 target), JPEG round trip of the RGB (the official script stores
JPEG quality 75, so those decoded pixels are the frame), render ids + depth of the mesh at the rescaled
camera, depth to uint16 mm zeroed where the mask is not fully valid, ids multiplied by the mask and filtered
by area and validity.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datasets.preprocess.covisibility import overlap_matrix, pairs_from_overlap, symmetric_score
from datasets.preprocess.errors import BadSceneInput
from datasets.preprocess.frame_device import FrameDeviceError, fall_back_to_cpu, frame_ops
from datasets.preprocess.frame_images import jpeg_round_trip, read_frame_mask, read_frame_rgb
from datasets.preprocess.panoptic import MAX_ENCODABLE_ID, IdFilter, apply_anon_mask
from datasets.preprocess.render import IdDepthRenderer
from datasets.preprocess.rescale import rescale_intrinsics, rescale_mask
from datasets.preprocess.rescale_plan import rescale_plan
from datasets.preprocess.result import FrameBlock, PreprocessConfig, PreprocessedScene
from datasets.preprocess.undistort import UndistortMaps, undistort_mask, undistortion_maps
from datasets.preprocess.unknown_labels import UnknownFaceMarker, UnknownLabelReport
from datasets.scannetpp.ply import read_ply
from datasets.scannetpp.record import CameraModel, FrameRecord, SceneRecord
from datasets.scannetpp.semantics import VertexPanoptic, load_label_map, read_vertex_panoptic_ids


class StageTimer:
    """Accumulates wall time per stage name."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.totals[name] += time.perf_counter() - start


def _resolve(root: Path, relative_or_absolute: str) -> Path:
    path = Path(relative_or_absolute)
    return path if path.is_absolute() else root / path


def _check_frame_sizes(frame: FrameRecord, rgb: np.ndarray, mask: np.ndarray) -> None:
    expected = (frame.camera.height, frame.camera.width)
    if rgb.shape[:2] != expected:
        raise BadSceneInput(
            f"image {frame.image_path} is {rgb.shape[1]}x{rgb.shape[0]} but its COLMAP camera says "
            f"{expected[1]}x{expected[0]} (cameras.txt WIDTH HEIGHT); the image and the camera must match"
        )
    if mask.shape != rgb.shape[:2]:
        raise BadSceneInput(
            f"anonymisation mask {frame.mask_path} is {mask.shape[1]}x{mask.shape[0]}, its image is "
            f"{rgb.shape[1]}x{rgb.shape[0]}; the mask must have the image's size"
        )


def _load_mesh_and_semantics(record: SceneRecord, config: PreprocessConfig, timer: StageTimer):
    try:
        with timer.stage("read_mesh"):
            mesh = read_ply(record.mesh_path)
        with timer.stage("semantics"):
            label_map = load_label_map(
                _resolve(record.root, config.class_list),
                _resolve(record.root, config.instance_list),
                _resolve(record.root, config.mapping_file),
            )
            labels = read_vertex_panoptic_ids(
                record.segments_path,
                record.segments_anno_path,
                label_map,
                mesh.num_vertices,
                cls_sep=config.cls_sep,
                export_crowd=config.export_crowd,
                unknown_labels=config.unknown_labels,
            )
    except BadSceneInput:
        raise
    except (ValueError, FileNotFoundError) as exc:
        raise BadSceneInput(str(exc)) from exc
    if len(mesh.faces) == 0:
        raise BadSceneInput(f"{record.mesh_path}: the mesh has no faces; nothing can be rendered")
    if not np.all(np.isfinite(mesh.vertices)):
        raise BadSceneInput(f"{record.mesh_path}: vertex coordinates (x y z) contain NaN or infinity")
    pan_ids = labels.pan_ids
    if pan_ids.size and pan_ids.max() > MAX_ENCODABLE_ID:
        raise BadSceneInput(
            f"{record.segments_anno_path}: {len(labels.segments)} instances give ids up to {pan_ids.max()}, more "
            f"than the 24-bit RGB encoding holds ({MAX_ENCODABLE_ID}); lower cls_sep or split the scene"
        )
    return mesh, labels, label_map.categories()


def _process_frame(
    frame: FrameRecord,
    maps: UndistortMaps,
    context: SceneContext,
    config: PreprocessConfig,
    timer: StageTimer,
) -> dict:
    with timer.stage("read_images"):
        rgb = read_frame_rgb(frame.image_path)
        mask = read_frame_mask(frame.mask_path)
        _check_frame_sizes(frame, rgb, mask)
        if mask.min() == 0:  # most frames show nobody: nothing to black out
            rgb[mask == 0] = 0
    plan = rescale_plan(maps.size[0], maps.size[1], config.target_resolution)
    try:
        image = _undistort_rescale(frame_ops(), rgb, maps, plan, timer)
    except FrameDeviceError as failure:  # the same pixels from the CPU; the run goes on
        image = _undistort_rescale(fall_back_to_cpu(failure), rgb, maps, plan, timer)
    with timer.stage("undistort"):
        mask = undistort_mask(mask, maps)
    with timer.stage("rescale"):
        mask = rescale_mask(mask, plan)
        K = rescale_intrinsics(maps.intrinsics, plan)
    with timer.stage("jpeg"):
        rgb = jpeg_round_trip(image, config.jpeg_quality)
    with timer.stage("render"):
        view = context.renderer.render(K, frame.cam_to_world, plan.out_size[0], plan.out_size[1])
    with timer.stage("depth_and_panoptic"):
        depth_mm = (view.depth * 1000).astype(np.uint16)  # truncating, as the official cast
        depth_mm[mask < 255] = 0
        ids, unknown_pixels = context.marker.clear(view.ids)
        panoptic = context.id_filter(apply_anon_mask(ids, mask), config.min_inst_area)
    return {
        "image": rgb,
        "depth_mm": depth_mm,
        "panoptic": panoptic,
        "K": K,
        "sees_mesh": view.depth.any(),
        "unknown_pixels": unknown_pixels,
    }


def _undistort_rescale(ops, rgb: np.ndarray, maps: UndistortMaps, plan, timer: StageTimer):
    """The frame's RGB undistorted and rescaled by `ops` (the CPU's or the GPU's, with identical pixels)."""
    with timer.stage("undistort"):
        undistorted = ops.undistort(rgb, maps)
    with timer.stage("rescale"):
        return ops.rescale(undistorted, plan)


class _DepthsInMetres(Sequence):
    """The depth maps of `frame_order` in metres, converted when read: a block's depth_mm may be a Zarr array
    on disk (a chunked scene's commit), so no more than one float map is in memory at a time."""

    def __init__(self, blocks: dict[str, FrameBlock], frame_order: list[tuple[str, int]]):
        self.blocks, self.frame_order = blocks, frame_order

    def __len__(self) -> int:
        return len(self.frame_order)

    def __getitem__(self, index: int) -> np.ndarray:
        camera, i = self.frame_order[index]
        return np.asarray(self.blocks[camera].depth_mm[i]).astype(np.float64) / 1000.0


def scene_pairs(
    record: SceneRecord,
    frame_order: list[tuple[str, int]],
    blocks: dict[str, FrameBlock],
    config: PreprocessConfig,
) -> np.ndarray:

    def overlaps() -> np.ndarray:
        depths = _DepthsInMetres(blocks, frame_order)
        intrinsics = [blocks[cam].intrinsics[i] for cam, i in frame_order]
        poses = [blocks[cam].cam_to_world[i] for cam, i in frame_order]
        return overlap_matrix(depths, intrinsics, poses)

    if record.pairs is None:
        return pairs_from_overlap(overlaps(), config.pairs_min_overlap)
    given = np.asarray(record.pairs, dtype=np.float64)
    if given.ndim != 2 or given.shape[1] < 2:
        raise BadSceneInput(
            f"scene {record.scene_id}: pairs must be a (P, >=2) array, got shape {given.shape}"
        )
    a, b = given[:, 0].astype(np.int64), given[:, 1].astype(np.int64)
    n = len(frame_order)
    if given.size and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= n):
        raise BadSceneInput(
            f"scene {record.scene_id}: field 'pairs' of selected_pairs.npz indexes frames outside 0..{n - 1}"
        )
    # Keep the file's score column when there is one; otherwise score the given pairs by co-visibility.
    score = given[:, 2] if given.shape[1] >= 3 else symmetric_score(overlaps(), a, b)
    return np.stack([a, b, score], axis=1).astype(np.float64).reshape(-1, 3)


def check_mesh_seen(record: SceneRecord, any_frame_sees_mesh: bool) -> None:
    """A scene where no frame sees any of the mesh has poses that do not belong to it (another frame of
    reference, millimetres instead of metres, world->camera stored as camera->world): its frames would be
    committed with empty depth and all-void labels."""
    if any_frame_sees_mesh:
        return
    raise BadSceneInput(
        f"scene {record.scene_id}: none of its {len(record.frames)} frames sees the mesh "
        f"{record.mesh_path.name} (rendered depth is empty everywhere); the poses in images.txt do not "
        "match the mesh (frame of reference, units or pose direction)"
    )


@dataclass
class SceneContext:
    """What every frame of a scene is rendered against: the id mesh uploaded into a renderer, the unknown-label
    marker and the labels. Built once per scene (per worker when the scene is split into frame chunks)."""

    renderer: IdDepthRenderer
    marker: UnknownFaceMarker
    id_filter: IdFilter
    """The scene's valid ids, indexed once for every frame's area / validity filter."""
    labels: VertexPanoptic
    categories: list[dict]
    timings: dict[str, float]
    """Seconds of read_mesh, semantics and build_mesh."""
    maps: dict[CameraModel, UndistortMaps] = field(default_factory=dict)
    """Undistortion maps per camera, made by the first frame that needs them (a fisheye 1752x1168 camera
    takes ~70 ms: once per scene and worker, not once per chunk)."""


def load_scene_context(record: SceneRecord, config: PreprocessConfig) -> SceneContext:
    """Read the mesh and its labels and build the renderer; BadSceneInput for unusable inputs."""
    timer = StageTimer()
    mesh, labels, categories = _load_mesh_and_semantics(record, config, timer)
    marker = UnknownFaceMarker(labels.pan_ids, labels.unknown_void)
    with timer.stage("build_mesh"):
        renderer = IdDepthRenderer.from_vertex_ids(
            mesh.vertices, mesh.faces, marker.render_ids, znear=config.znear, zfar=config.zfar
        )
    return SceneContext(renderer, marker, IdFilter(labels.pan_ids), labels, categories, dict(timer.totals))


def process_frames(
    record: SceneRecord,
    frames: list[FrameRecord],
    context: SceneContext,
    config: PreprocessConfig,
    timer: StageTimer,
) -> Iterator[tuple[FrameRecord, dict]]:
    """(frame, result) of each of `frames` in order, one at a time, so that a caller can store and drop
    each result (a chunk task's memory stays bounded). Undistortion maps are made once per camera."""
    maps_by_camera = context.maps
    for frame in frames:
        if not np.all(np.isfinite(frame.cam_to_world)):
            raise BadSceneInput(f"scene {record.scene_id}: frame {frame.name!r} has a non-finite pose")
        if frame.camera not in maps_by_camera:
            with timer.stage("undistort_maps"):
                maps_by_camera[frame.camera] = undistortion_maps(frame.camera)
        maps = maps_by_camera[frame.camera]
        yield frame, _process_frame(frame, maps, context, config, timer)


def preprocess_scene(record: SceneRecord, config: PreprocessConfig | None = None) -> PreprocessedScene:
    """Preprocess one scene: every selected frame undistorted, rescaled, rendered; grouped by camera.

    Pure: reads the record's files, writes nothing. Raises BadSceneInput (a ValueError) for input problems
    that a retry cannot fix. `timings` holds seconds per stage plus `total`; `unknown_labels` what the labels
    missing from map_benchmark.csv left void (nothing is logged: the caller warns once per scene)."""
    config = config or PreprocessConfig()
    timer = StageTimer()
    started = time.perf_counter()
    if not record.frames:
        raise BadSceneInput(f"scene {record.scene_id}: no frames selected; nothing to preprocess")
    context = load_scene_context(record, config)
    for stage, seconds in context.timings.items():
        timer.totals[stage] += seconds

    per_camera: dict[str, list[tuple[FrameRecord, dict]]] = defaultdict(list)
    frame_order: list[tuple[str, int]] = []
    for frame, result in process_frames(record, record.frames, context, config, timer):
        frame_order.append((frame.device, len(per_camera[frame.device])))
        per_camera[frame.device].append((frame, result))

    check_mesh_seen(record, any(r["sees_mesh"] for items in per_camera.values() for _, r in items))
    blocks: dict[str, FrameBlock] = {}
    for camera, items in per_camera.items():
        shapes = {r["image"].shape for _, r in items}
        if len(shapes) != 1:
            raise BadSceneInput(
                f"scene {record.scene_id}: {camera} frames have different sizes {sorted(shapes)}; "
                "one camera per device is expected (cameras.txt)"
            )
        blocks[camera] = stack_frames(camera, items)
    with timer.stage("pairs"):
        pairs = scene_pairs(record, frame_order, blocks, config)
    timings = dict(timer.totals)
    timings["total"] = time.perf_counter() - started
    pixels = sum(result["unknown_pixels"] for items in per_camera.values() for _, result in items)
    return PreprocessedScene(
        scene_id=record.scene_id,
        blocks=blocks,
        frame_order=frame_order,
        pairs=pairs,
        segments=context.labels.segments,
        categories=context.categories,
        timings=timings,
        unknown_labels=unknown_label_report(context.labels, pixels),
    )


def stack_frames(camera: str, items: list[tuple[FrameRecord, dict]]) -> FrameBlock:
    """Frames of one camera (same size), in order, as the stacked arrays the store holds."""
    return FrameBlock(
        camera=camera,
        names=[f.name for f, _ in items],
        images=np.stack([r["image"] for _, r in items]),
        depth_mm=np.stack([r["depth_mm"] for _, r in items]),
        panoptic=np.stack([r["panoptic"] for _, r in items]),
        intrinsics=np.stack([r["K"] for _, r in items]),
        cam_to_world=np.stack([np.asarray(f.cam_to_world, dtype=np.float64) for f, _ in items]),
    )


def unknown_label_report(labels: VertexPanoptic, pixels: int) -> UnknownLabelReport:
    """What the labels missing from map_benchmark.csv left void: per label vertices, and `pixels` rendered."""
    vertices = int(np.count_nonzero(labels.unknown_void)) if labels.unknown_void is not None else 0
    return UnknownLabelReport(dict(labels.unknown_vertices), vertices, pixels)
