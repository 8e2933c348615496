"""Segment-coloured point clouds: gather confident points of a reconstruction, write PLY and GLB."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datasets.segment_colors import colorize_ids
from panst3r_core.reconstruction import PanopticReconstruction

VOID_POINT_COLOR = (128, 128, 128)


@dataclass
class SegmentPoints:
    """Confident points of a reconstruction, flattened over views."""

    xyz: np.ndarray  # (P, 3) float32 world coordinates
    segment_id: np.ndarray  # (P,) int32, 0 = void
    view_index: np.ndarray  # (P,) int32


def world_points(recon: PanopticReconstruction, view: int, use_local: bool = True) -> np.ndarray:
    """(H, W, 3) world points of one view.

    With `use_local` (the official demo's default) the view's own-frame points are mapped by its estimated
    camera-to-world; otherwise the network's world pointmap is used as is.
    """
    if not use_local:
        return recon.pts3d[view].astype(np.float32)
    c2w = recon.cam_to_world[view].astype(np.float64)
    local = recon.pts3d_local[view].astype(np.float64)
    return (local @ c2w[:3, :3].T + c2w[:3, 3]).astype(np.float32)


def gather_points(
    recon: PanopticReconstruction,
    min_confidence: float = 3.0,
    max_points: int | None = 2_000_000,
    include_void: bool = True,
    use_local: bool = True,
) -> SegmentPoints:
    """Points whose confidence >= `min_confidence`, optionally without void, evenly thinned to `max_points`.

    Thinning keeps every k-th point (deterministic), so the output does not depend on a random seed.
    """
    xyz_parts, seg_parts, view_parts = [], [], []
    for v in range(recon.num_views):
        keep = recon.confidence[v] >= min_confidence
        if not include_void:
            keep &= recon.panoptic[v] != 0
        xyz_parts.append(world_points(recon, v, use_local)[keep])
        seg_parts.append(recon.panoptic[v][keep].astype(np.int32))
        view_parts.append(np.full(int(keep.sum()), v, dtype=np.int32))
    xyz = np.concatenate(xyz_parts) if xyz_parts else np.zeros((0, 3), np.float32)
    seg = np.concatenate(seg_parts) if seg_parts else np.zeros(0, np.int32)
    views = np.concatenate(view_parts) if view_parts else np.zeros(0, np.int32)
    if max_points is not None and len(xyz) > max_points:
        step = int(np.ceil(len(xyz) / max_points))
        xyz, seg, views = xyz[::step], seg[::step], views[::step]
    return SegmentPoints(xyz=xyz, segment_id=seg, view_index=views)


def point_colors(segment_id: np.ndarray, id_to_color: dict[int, tuple[int, int, int]]) -> np.ndarray:
    """(P,) ids -> (P, 3) uint8; ids without a colour (void) get VOID_POINT_COLOR."""
    colors = colorize_ids(segment_id, id_to_color)
    known = np.isin(segment_id, np.fromiter(id_to_color, dtype=np.int64, count=len(id_to_color)))
    colors[~known] = VOID_POINT_COLOR
    return colors


def write_segment_ply(path: Path, points: SegmentPoints, colors: np.ndarray, labels: dict[int, str]) -> None:
    """Binary little-endian PLY: x y z (float32), red green blue (uchar), segment (int32), view (int32).

    Labels travel in header comments `comment segment <id> <class name>` (id 0 = void), which
    PLY readers keep and ignore.
    """
    count = len(points.xyz)
    record = np.dtype(
        [
            ("x", "<f4"),
            ("y", "<f4"),
            ("z", "<f4"),
            ("red", "u1"),
            ("green", "u1"),
            ("blue", "u1"),
            ("segment", "<i4"),
            ("view", "<i4"),
        ]
    )
    data = np.empty(count, dtype=record)
    data["x"], data["y"], data["z"] = points.xyz[:, 0], points.xyz[:, 1], points.xyz[:, 2]
    data["red"], data["green"], data["blue"] = colors[:, 0], colors[:, 1], colors[:, 2]
    data["segment"] = points.segment_id
    data["view"] = points.view_index
    comments = ["comment PanSt3R prediction: one colour per segment; segment 0 = void"]
    comments += [f"comment segment {seg_id} {_one_line(name)}" for seg_id, name in sorted(labels.items())]
    header = "\n".join(
        [
            "ply",
            "format binary_little_endian 1.0",
            *comments,
            f"element vertex {count}",
            "property float x",
            "property float y",
            "property float z",
            "property uchar red",
            "property uchar green",
            "property uchar blue",
            "property int segment",
            "property int view",
            "end_header",
        ]
    )
    with open(path, "wb") as handle:
        handle.write((header + "\n").encode("utf-8"))
        handle.write(data.tobytes())


def _one_line(text: str) -> str:
    return " ".join(text.split())


def camera_frustum_lines(c2w: np.ndarray, focal: float, width: int, height: int, size: float) -> np.ndarray:
    """(8, 2, 3) line segments of a camera pyramid (apex at the centre, image plane at depth `size`)."""
    half_w = 0.5 * width / focal * size
    half_h = 0.5 * height / focal * size
    corners = np.array(
        [[-half_w, -half_h, size], [half_w, -half_h, size], [half_w, half_h, size], [-half_w, half_h, size]]
    )
    local = np.vstack([np.zeros((1, 3)), corners])
    world = local @ c2w[:3, :3].T + c2w[:3, 3]
    edges = [(0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (2, 3), (3, 4), (4, 1)]
    return np.stack([world[[a, b]] for a, b in edges])


def write_scene_glb(
    path: Path,
    recon: PanopticReconstruction,
    points: SegmentPoints,
    id_to_color: dict[int, tuple[int, int, int]],
    camera_size: float | None = None,
) -> None:
    """GLB scene: one point-cloud node per segment (node name and `extras` hold id, class, score, area),
    a `void` node for unlabelled points, and one frustum node per camera. Scene `extras` map ids to labels.
    """
    import trimesh

    scene = trimesh.Scene()
    by_id = {seg.id: seg for seg in recon.segments}
    # one sort instead of one full-array mask per segment
    order = np.argsort(points.segment_id, kind="stable")
    seg_ids, starts, counts = np.unique(points.segment_id[order], return_index=True, return_counts=True)
    for seg_id, start, count in zip(seg_ids.tolist(), starts.tolist(), counts.tolist()):
        members = order[start : start + count]
        color = id_to_color.get(seg_id, VOID_POINT_COLOR)
        rgba = np.tile(np.array([*color, 255], dtype=np.uint8), (count, 1))
        cloud = trimesh.PointCloud(points.xyz[members], colors=rgba)
        if seg_id in by_id:
            seg = by_id[seg_id]
            name = f"segment_{seg_id:04d}_{_node_safe(seg.class_name)}"
            extras = {
                "segment_id": seg_id,
                "class_id": seg.class_id,
                "class_name": seg.class_name,
                "score": seg.score,
                "area": seg.area,
            }
        else:
            name = "void"
            extras = {"segment_id": 0, "class_name": "void"}
        scene.add_geometry(cloud, node_name=name, geom_name=name, metadata=extras)
    if camera_size is None:
        extent = np.ptp(points.xyz, axis=0).max() if len(points.xyz) else 1.0
        camera_size = 0.05 * float(extent) if extent > 0 else 0.05
    for v in range(recon.num_views):
        height, width = recon.images[v].shape[:2]
        lines = camera_frustum_lines(
            recon.cam_to_world[v].astype(np.float64), float(recon.focal[v]), width, height, camera_size
        )
        view_name = recon.view_names[v] if v < len(recon.view_names) else str(v)
        scene.add_geometry(
            trimesh.load_path(lines),
            node_name=f"camera_{v:04d}",
            geom_name=f"camera_{v:04d}",
            metadata={"view_index": v, "view_name": view_name, "focal": float(recon.focal[v])},
        )
    scene.metadata["labels"] = {str(s.id): s.class_name for s in recon.segments}
    scene.metadata["generator"] = "panst3r predict"
    Path(path).write_bytes(scene.export(file_type="glb"))


def _node_safe(name: str) -> str:
    return "_".join(name.replace(",", " ").split())[:48] or "unnamed"
