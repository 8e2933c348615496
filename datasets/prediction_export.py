"""Write a `PanopticReconstruction` to disk: PNG id maps, visualisations, JSON, PLY, GLB and raw NPZ.

Layout under the output folder:

    panoptic/<view>.png       segment ids, RGB-encoded id = R + 256 G + 65536 B (COCO panoptic), 0 = void
    panoptic_vis/<view>.png   the view blended with one colour per segment
    panoptic.json             COCO-panoptic annotations for panoptic/ (category id = index in class_names)
    segments.json             segments (id, query, class, score, area and area per view), classes, views
    cameras.json              per view: size, focal, principal point, intrinsics, camera-to-world
    scene.ply                 confident points coloured by segment (labels in header comments)
    scene.glb                 the same points as one node per segment + camera frustums
    raw.npz                   (raw=True) every raw output; fixture names: pts3d, pts3d_local, conf, focal,
                              c2w, pointmaps, pred_logits, pred_masks, out_queries, keyframes, ...
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from datasets.image_io import codec_threads
from datasets.point_cloud_export import gather_points, point_colors, write_scene_glb, write_segment_ply
from datasets.segment_colors import colorize_ids, ids_to_rgb, segment_palette
from panst3r_core.classes.vocabulary import SETS_WITH_STUFF, thing_flags
from panst3r_core.reconstruction import PanopticReconstruction, principal_point


@dataclass
class ExportOptions:
    """What to write and how."""

    raw: bool = False  # also write raw.npz with every raw model output
    min_confidence: float = 3.0  # points below this confidence (1 + exp(c)) are left out of PLY/GLB
    max_points: int | None = 2_000_000  # evenly thin the point cloud to at most this many points
    include_void: bool = True  # keep unlabelled (void) points, coloured grey
    use_local_pointmaps: bool = True  # points = c2w @ pts3d_local (the official demo's default)
    overlay_alpha: float = 0.5  # weight of the segment colour in panoptic_vis
    palette_seed: int = 0  # colours are deterministic for a given seed
    # Built-in class sets, in the order the vocabulary was made from, that decide `isthing` in
    # panoptic.json (vocabulary.thing_flags); names none of them lists are things.
    class_sets: tuple[str, ...] = SETS_WITH_STUFF
    threads: int | None = None  # per-view PNGs and the point clouds in parallel; None: codec_threads()


@dataclass
class ExportedFiles:
    """Paths written by `export_reconstruction`."""

    out_dir: Path
    panoptic_pngs: list[Path] = field(default_factory=list)
    visualisations: list[Path] = field(default_factory=list)
    coco_json: Path | None = None
    segments_json: Path | None = None
    cameras_json: Path | None = None
    ply: Path | None = None
    glb: Path | None = None
    raw_npz: Path | None = None
    num_points: int = 0

    def summary_lines(self) -> list[str]:
        """Human-readable lines 'what -> where' for the CLI summary."""
        lines = [
            f"panoptic id maps ({len(self.panoptic_pngs)} PNG): {self.out_dir / 'panoptic'}",
            f"visualisations ({len(self.visualisations)} PNG): {self.out_dir / 'panoptic_vis'}",
            f"segments: {self.segments_json}",
            f"COCO panoptic annotations: {self.coco_json}",
            f"cameras: {self.cameras_json}",
            f"point cloud ({self.num_points} points): {self.ply}",
            f"GLB scene: {self.glb}",
        ]
        if self.raw_npz is not None:
            lines.append(f"raw outputs: {self.raw_npz}")
        return lines


def view_file_stems(recon: PanopticReconstruction) -> list[str]:
    """One unique file stem per view: the view name when given and unique, else `view_0000` style."""
    return file_stems(recon.view_names, recon.num_views)


def file_stems(view_names: list[str], num_views: int) -> list[str]:
    """`view_file_stems` from the names alone (a streamed export knows them before any view)."""
    names = list(view_names) if len(view_names) == num_views else []
    if not names or len(set(names)) != len(names):
        return [f"view_{v:04d}" if not names else f"{v:04d}_{names[v]}" for v in range(num_views)]
    return names


def view_shapes(recon: PanopticReconstruction) -> list[tuple[int, int]]:
    """(H, W) of every view of an in-memory reconstruction."""
    return [tuple(int(d) for d in ids.shape) for ids in recon.panoptic]


def segment_color_map(recon: PanopticReconstruction, seed: int = 0) -> dict[int, tuple[int, int, int]]:
    """Segment id -> RGB colour, deterministic (palette index = position in recon.segments)."""
    palette = segment_palette(len(recon.segments), seed)
    return {seg.id: tuple(int(c) for c in palette[i]) for i, seg in enumerate(recon.segments)}


def export_reconstruction(
    recon: PanopticReconstruction, out_dir: str | Path, options: ExportOptions | None = None
) -> ExportedFiles:
    """Write every output of `recon` under `out_dir` (created if needed) and return the paths."""
    options = options or ExportOptions()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output path {out} exists and is not a folder; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    files = ExportedFiles(out_dir=out)
    stems = view_file_stems(recon)
    colors = segment_color_map(recon, options.palette_seed)

    (out / "panoptic").mkdir(exist_ok=True)
    (out / "panoptic_vis").mkdir(exist_ok=True)
    files.panoptic_pngs = [out / "panoptic" / f"{stem}.png" for stem in stems]
    files.visualisations = [out / "panoptic_vis" / f"{stem}.png" for stem in stems]

    def write_view(v: int) -> None:
        ids = recon.panoptic[v]
        Image.fromarray(ids_to_rgb(ids)).save(files.panoptic_pngs[v])
        overlay = overlay_segments(recon.images[v], ids, colors, options.overlay_alpha)
        Image.fromarray(overlay).save(files.visualisations[v])

    # PNG encoding (zlib) and the numpy work release the GIL: a 100-view scene's 200 PNGs took 4 of its 7 s
    # of export on one thread, while the GPU that predicted it waited for the next scene
    threads = options.threads or codec_threads()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        clouds = pool.submit(_write_point_clouds, recon, out, options, colors, files)
        list(pool.map(write_view, range(len(stems))))  # list(): a failed view raises here
        clouds.result()

    files.segments_json = out / "segments.json"
    write_json(files.segments_json, segments_document(recon, stems))
    files.coco_json = out / "panoptic.json"
    write_json(files.coco_json, coco_panoptic_document(recon, stems, options.class_sets))
    files.cameras_json = out / "cameras.json"
    write_json(files.cameras_json, cameras_document(recon, stems))

    if options.raw:
        files.raw_npz = out / "raw.npz"
        np.savez_compressed(files.raw_npz, **raw_arrays(recon))
    return files


def _write_point_clouds(
    recon: PanopticReconstruction, out: Path, options: ExportOptions, colors: dict, files: ExportedFiles
) -> None:
    """scene.ply and scene.glb from the confident points (thinned to `max_points`)."""
    points = gather_points(
        recon,
        min_confidence=options.min_confidence,
        max_points=options.max_points,
        include_void=options.include_void,
        use_local=options.use_local_pointmaps,
    )
    files.num_points = len(points.xyz)
    labels = {0: "void", **{seg.id: seg.class_name for seg in recon.segments}}
    files.ply = out / "scene.ply"
    write_segment_ply(files.ply, points, point_colors(points.segment_id, colors), labels)
    files.glb = out / "scene.glb"
    write_scene_glb(files.glb, recon, points, colors)


def overlay_segments(image: np.ndarray, ids: np.ndarray, colors: dict, alpha: float) -> np.ndarray:
    """(H, W, 3) uint8 view with each labelled pixel blended towards its segment's colour (void untouched)."""
    color = colorize_ids(ids, colors).astype(np.float32)
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * color
    labelled = (ids != 0)[..., None]
    return np.where(labelled, blended, image.astype(np.float32)).round().astype(np.uint8)


def segments_document(recon: PanopticReconstruction, stems: list[str]) -> dict:
    """The content of segments.json."""
    return {
        "postprocess": recon.postprocess,
        "class_names": list(recon.class_names),
        "views": stems,
        "keyframes": [int(k) for k in recon.keyframes],
        "segments": [seg.to_dict() for seg in recon.segments],
        "timings_s": {k: round(float(t), 6) for k, t in recon.timings.items()},
    }


def coco_panoptic_document(
    recon: PanopticReconstruction,
    stems: list[str],
    class_sets: tuple[str, ...] = SETS_WITH_STUFF,
    shapes: list[tuple[int, int]] | None = None,
) -> dict:
    """COCO-panoptic prediction JSON for the PNGs in panoptic/, every class listed with `isthing` from the
    built-in set it belongs to (ScanNet++ and COCO know their stuff; any other name counts as a thing).

    Category ids are the indices into class_names, the same as `class_id` in segments.json. `shapes`: the
    views' (H, W) when `recon` holds no per-view arrays (a streamed export's summary).
    """
    shapes = shapes if shapes is not None else view_shapes(recon)
    images, annotations = [], []
    for v, stem in enumerate(stems):
        height, width = shapes[v]
        images.append({"id": v, "file_name": f"{stem}.png", "width": int(width), "height": int(height)})
        infos = [
            {
                "id": seg.id,
                "category_id": seg.class_id,
                "iscrowd": 0,
                "area": int(seg.area_per_view[v]),
                "score": seg.score,
            }
            for seg in recon.segments
            if seg.area_per_view[v] > 0
        ]
        annotations.append({"image_id": v, "file_name": f"{stem}.png", "segments_info": infos})
    flags = thing_flags(list(recon.class_names), class_sets)
    categories = [
        {"id": i, "name": name, "isthing": int(thing)}
        for i, (name, thing) in enumerate(zip(recon.class_names, flags))
    ]
    return {"images": images, "annotations": annotations, "categories": categories}


def cameras_document(
    recon: PanopticReconstruction, stems: list[str], shapes: list[tuple[int, int]] | None = None
) -> dict:
    """The content of cameras.json (OpenCV axes; principal point = image centre, as the focal estimate).
    `shapes`: the views' (H, W) when `recon` holds no per-view arrays (a streamed export's summary)."""
    shapes = shapes if shapes is not None else [tuple(img.shape[:2]) for img in recon.images]
    keyframes = set(recon.keyframes)
    cameras = []
    for v, stem in enumerate(stems):
        height, width = shapes[v]
        focal = float(recon.focal[v])
        cx, cy = principal_point(height, width)
        cameras.append(
            {
                "view": stem,
                "index": v,
                "width": int(width),
                "height": int(height),
                "focal": focal,
                "principal_point": [cx, cy],
                "intrinsics": [[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]],
                "cam_to_world": recon.cam_to_world[v].astype(float).tolist(),
                "is_keyframe": v in keyframes,
            }
        )
    return {
        "convention": "OpenCV camera axes (x right, y down, z forward); world = first keyframe camera",
        "cameras": cameras,
    }


def raw_arrays(recon: PanopticReconstruction) -> dict[str, np.ndarray]:
    """Arrays for raw.npz. Per-view lists are stacked along a leading view axis when every view has the
    same shape (names as in the parity fixture), else stored per view as `<name>_<view index>`.
    """
    per_view = {
        "images_uint8": recon.images,
        "pan": recon.panoptic,
        "pan_conf": recon.panoptic_conf,
        "pts3d": recon.pts3d,
        "pts3d_local": recon.pts3d_local,
        "conf": recon.confidence,
    }
    arrays: dict[str, np.ndarray] = {}
    for name, items in per_view.items():
        arrays.update(_stack_or_split(name, items))
    arrays["focal"] = np.asarray(recon.focal, dtype=np.float32)
    arrays["c2w"] = np.asarray(recon.cam_to_world, dtype=np.float32)
    arrays["keyframes"] = np.asarray(recon.keyframes, dtype=np.int64)
    arrays["class_names"] = np.asarray(recon.class_names, dtype=str)
    arrays["segments"] = np.asarray(
        [[s.id, s.query_id, s.class_id] for s in recon.segments], dtype=np.int64
    ).reshape(-1, 3)
    for name, value in recon.raw.items():
        if isinstance(value, list | tuple):
            arrays.update(_stack_or_split(name, list(value)))
        else:
            arrays[name] = np.asarray(value)
    return arrays


def _stack_or_split(name: str, items: list[np.ndarray]) -> dict[str, np.ndarray]:
    if items and all(item.shape == items[0].shape for item in items):
        return {name: np.stack(items)}
    return {f"{name}_{v}": np.asarray(item) for v, item in enumerate(items)}


def write_json(path: Path, document: dict) -> None:
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
