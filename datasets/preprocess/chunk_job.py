"""One scene as several tasks: frame chunks rendered against a per-worker cached mesh, then one commit.

A scene of hundreds of frames as one task balances badly over workers (the last scenes keep a few workers
busy while the others idle). Here the flow stages the scene (`stage_chunked_scene`: the empty arrays in an
invisible staging group), each `run_frame_chunk` task processes a shard-aligned range of one camera's frames
and writes them into that group, and `commit_chunked_scene` checks the whole, writes pairs and attrs and
commits with the same rename as a whole-scene task. The output equals `run_scene`'s bit for bit.

Guarantees kept: nothing is visible before the commit; a failing chunk fails its scene (the flow then never
commits it, and the staging group is swept); chunks of one scene never share a shard file. Only directory
stores take chunks: an Icechunk session belongs to one writer, so object stores keep one task per scene.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datasets.preprocess.error_kinds import failure_reason
from datasets.preprocess.rescale_plan import rescale_plan
from datasets.preprocess.result import (
    FrameBlock,
    PreprocessConfig,
    PreprocessedScene,
)
from datasets.preprocess.scene_job import prepare_worker, task_errors
from datasets.preprocess.unknown_labels import UnknownLabelReport
from datasets.scannetpp.reader import read_scene
from datasets.scannetpp.record import FrameRecord, SceneRecord
from datasets.store import hashing
from datasets.store.schema import SHARD_FRAMES
from datasets.store.writer import (
    CameraLayout,
    commit_staged_scene,
    stage_scene,
    staged_frames,
    supports_staged_scenes,
    write_staged_frames,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameChunk:
    """Frames start..stop-1 of one camera's block (block order = selection order within the camera)."""

    camera: str
    start: int
    stop: int


@dataclass(frozen=True)
class StagedScene:
    """A scene whose staging group exists, and the chunk tasks that fill it."""

    staging: str
    chunks: list[FrameChunk]


def camera_frames(record: SceneRecord, camera: str) -> list[FrameRecord]:
    """The frames of `camera` in selection order: index i is frame i of the camera's block in the store."""
    return [frame for frame in record.frames if frame.device == camera]


def scene_layout(record: SceneRecord, config: PreprocessConfig) -> list[CameraLayout] | None:
    """Names and output size of every camera's frames, known before any frame is processed (undistortion
    keeps the input size, the rescale rule decides the rest); None when a camera's frames would differ in
    size, a scene the whole-scene task rejects with its own message."""
    layouts = []
    for camera in dict.fromkeys(frame.device for frame in record.frames):
        frames = camera_frames(record, camera)
        sizes = {
            rescale_plan(f.camera.width, f.camera.height, config.target_resolution).out_size for f in frames
        }
        if len(sizes) != 1:
            return None
        ((width, height),) = sizes
        layouts.append(CameraLayout(camera, tuple(f.name for f in frames), height, width))
    return layouts


def split_frames(layouts: list[CameraLayout], frames_per_task: int) -> list[FrameChunk]:
    """Shard-aligned chunks of about `frames_per_task` frames (whole shards, spread evenly over the chunks of
    a camera, so that a 150-frame camera at 32 gives 32/32/32/32/22 and never a 6-frame straggler)."""
    shards_per_task = max(1, -(-frames_per_task // SHARD_FRAMES))
    chunks = []
    for layout in layouts:
        frames = len(layout.names)
        shards = -(-frames // SHARD_FRAMES)
        tasks = -(-shards // shards_per_task)
        for group in np.array_split(np.arange(shards), tasks):
            start, stop = int(group[0]) * SHARD_FRAMES, min((int(group[-1]) + 1) * SHARD_FRAMES, frames)
            chunks.append(FrameChunk(layout.camera, start, stop))
    return chunks


def stage_chunked_scene(
    store: str | Path,
    root: str | Path,
    scene_id: str,
    config: PreprocessConfig,
    pairs_dir: str | Path | None,
    frames_per_task: int,
    record: SceneRecord | None = None,
) -> StagedScene | None:
    """Stage `scene_id` for chunk tasks (flow process), or None when it runs as one task: chunking is off
    (`frames_per_task` 0), the store is an object store, the scene fits one chunk, or its inputs cannot be
    laid out (the whole-scene task then fails it with the reader's own message). `record`: the scene as
    planning read it (read again when not given)."""
    if frames_per_task <= 0 or not supports_staged_scenes(store):
        return None
    try:
        record = record or read_scene(root, scene_id, pairs_dir)
        layouts = scene_layout(record, config) if record.frames else None
    except Exception as exc:  # noqa: BLE001 - the scene task reports it; planning never fails a run
        log.debug("scene %s runs as one task: %s", scene_id, failure_reason(exc))
        return None
    if layouts is None:
        return None
    chunks = split_frames(layouts, frames_per_task)
    if len(chunks) == 1:
        return None
    return StagedScene(stage_scene(store, scene_id, layouts), chunks)


# ---------------------------------------------------------------------- the per-worker scene cache
CACHE_SCENES = 2
"""Scenes whose mesh stays built in a worker: two, so that a worker alternating between the end of one
scene and the start of the next does not rebuild either; more would only hold memory (a dense mesh and its
renderer are a few hundred MB)."""
_scene_cache: OrderedDict[tuple, tuple[SceneRecord, Any]] = OrderedDict()
context_builds = 0
"""Meshes built by this process (tests and the benchmark count them)."""


def cached_scene(
    root: str | Path, scene_id: str, pairs_dir: str | Path | None, config: PreprocessConfig, source_hash: str
) -> tuple[SceneRecord, Any, bool]:
    """(record, SceneContext, built now) of a scene, from this process's cache when the same inputs
    (source hash) and settings (config hash) were loaded before."""
    global context_builds
    from datasets.preprocess.scene import load_scene_context  # imports pyrender

    key = (str(root), scene_id, source_hash, hashing.config_hash(config))
    if key in _scene_cache:
        _scene_cache.move_to_end(key)
        return (*_scene_cache[key], False)
    while len(_scene_cache) >= CACHE_SCENES:
        _scene_cache.popitem(last=False)  # drop before building: never hold more than CACHE_SCENES
    record = read_scene(root, scene_id, pairs_dir)
    context = load_scene_context(record, config)
    context_builds += 1
    _scene_cache[key] = (record, context)
    return record, context, True


def clear_scene_cache() -> None:
    _scene_cache.clear()


# ---------------------------------------------------------------------- the tasks' library functions
def run_frame_chunk(
    root: str | Path,
    store: str | Path,
    scene_id: str,
    config: PreprocessConfig,
    pairs_dir: str | Path | None,
    source_hash: str,
    staging: str,
    chunk: FrameChunk,
) -> dict[str, Any]:
    """Process `chunk`'s frames and write them into the staging group, one shard at a time (a worker holds
    at most SHARD_FRAMES processed frames). Returns what the commit needs: frame count, whether any frame
    saw the mesh, unknown-label pixels, stage seconds, and the scene's segments and categories."""
    with task_errors(store):
        return _run_frame_chunk(root, store, scene_id, config, pairs_dir, source_hash, staging, chunk)


def _run_frame_chunk(root, store, scene_id, config, pairs_dir, source_hash, staging, chunk) -> dict[str, Any]:
    prepare_worker()
    from datasets.preprocess.scene import StageTimer, process_frames, stack_frames, unknown_label_report

    started = time.perf_counter()
    timer = StageTimer()
    record, context, built = cached_scene(root, scene_id, pairs_dir, config, source_hash)
    if built:
        for stage, seconds in context.timings.items():
            timer.totals[stage] += seconds
    frames = camera_frames(record, chunk.camera)[chunk.start : chunk.stop]
    shard: list = []
    written, sees_mesh, unknown_pixels = chunk.start, False, 0
    for frame, result in process_frames(record, frames, context, config, timer):
        sees_mesh = sees_mesh or bool(result["sees_mesh"])
        unknown_pixels += int(result["unknown_pixels"])
        shard.append((frame, result))
        if len(shard) == SHARD_FRAMES or written + len(shard) == chunk.stop:
            with timer.stage("write"):
                write_staged_frames(store, staging, stack_frames(chunk.camera, shard), written)
            written += len(shard)
            shard = []  # release the frames before processing more
    return {
        "frames": len(frames),
        "sees_mesh": sees_mesh,
        "unknown_pixels": unknown_pixels,
        "timings": dict(timer.totals),
        "seconds": time.perf_counter() - started,
        "built_mesh": built,
        "segments": context.labels.segments,
        "categories": context.categories,
        # The scene's labels (the same for every chunk); the commit adds up the pixels.
        "unknown_labels": unknown_label_report(context.labels, 0).to_attrs(),
    }


def commit_chunked_scene(
    root: str | Path,
    store: str | Path,
    scene_id: str,
    config: PreprocessConfig,
    pairs_dir: str | Path | None,
    split: str,
    source_hash: str,
    staging: str,
    chunk_results: list[dict[str, Any]],
) -> dict[str, Any]:
    """After every chunk succeeded: the scene-wide checks, pairs, attrs, and the atomic commit. Returns
    `run_scene`'s dict; raises BadSceneInput when no frame saw the mesh (nothing is committed)."""
    with task_errors(store):
        return _commit_chunked_scene(
            root, store, scene_id, config, pairs_dir, split, source_hash, staging, chunk_results
        )


def _commit_chunked_scene(
    root, store, scene_id, config, pairs_dir, split, source_hash, staging, chunk_results
) -> dict[str, Any]:
    prepare_worker()
    from datasets.preprocess.scene import StageTimer, check_mesh_seen, scene_pairs

    started = time.perf_counter()
    timer = StageTimer()
    record = read_scene(root, scene_id, pairs_dir)
    check_mesh_seen(record, any(r["sees_mesh"] for r in chunk_results))
    counts: dict[str, int] = {}
    frame_order = []
    for frame in record.frames:
        frame_order.append((frame.device, counts.get(frame.device, 0)))
        counts[frame.device] = counts.get(frame.device, 0) + 1
    group = staged_frames(store, staging)
    blocks = {camera: _lazy_block(group[camera], camera) for camera in counts}
    with timer.stage("pairs"):
        pairs = scene_pairs(record, frame_order, blocks, config)
    first = chunk_results[0]
    report = UnknownLabelReport.from_attrs(first["unknown_labels"])
    scene = PreprocessedScene(
        scene_id=scene_id,
        blocks={},  # the frames are in the staging group already
        frame_order=frame_order,
        pairs=pairs,
        segments=first["segments"],
        categories=first["categories"],
        timings=_summed_timings([r["timings"] for r in chunk_results], timer.totals),
        unknown_labels=UnknownLabelReport(
            report.vertices_by_label, report.vertices, sum(r["unknown_pixels"] for r in chunk_results)
        ),
    )
    chunk_seconds = sum(r["seconds"] for r in chunk_results)
    summary = commit_staged_scene(
        store,
        staging,
        scene,
        source_hash=source_hash,
        config_hash=hashing.config_hash(config),
        code_version=hashing.code_version(),
        split=split,
        # `total` is the scene's task seconds, as for a whole-scene task: the chunks' and this step's.
        started_at=started - chunk_seconds,
        made_with={
            "config": asdict(config),
            "pairs_dir": str(Path(pairs_dir).resolve()) if pairs_dir else None,
        },
    )
    log.info("scene %s: %d frames in %d chunks committed", scene_id, scene.num_frames, len(chunk_results))
    return {
        "scene_id": scene_id,
        "status": "done",
        "frames": summary["frames"],
        "seconds": summary["timings"]["total"],
        "commit_seconds": summary["commit_seconds"],
        "path": summary["path"],
        "unknown_labels": scene.unknown_labels.to_attrs(),
    }


def _lazy_block(sub, camera: str) -> FrameBlock:
    """A staged camera block whose big arrays stay on disk: co-visibility reads one depth map at a time."""
    return FrameBlock(
        camera=camera,
        names=list(sub.attrs["names"]),
        images=sub["images"],
        depth_mm=sub["depth_mm"],
        panoptic=sub["panoptic"],
        intrinsics=sub["intrinsics"][...],
        cam_to_world=sub["cam_to_world"][...],
    )


def _summed_timings(chunk_timings: list[dict[str, float]], own: dict[str, float]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for timings in [*chunk_timings, own]:
        for stage, seconds in timings.items():
            totals[stage] = totals.get(stage, 0.0) + seconds
    return totals
