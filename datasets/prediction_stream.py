"""Write a streamed prediction to disk as it arrives: a `ReconstructionSink` that keeps one chunk in memory.

Layout under the output folder (the names of `prediction_export` where they overlap):

    prediction.zarr/          Zarr v3 group; attrs: format, format_version, views, class_names, keyframes,
                              postprocess, segments (without per-view areas: see segments.json)
        shape                 (V, 2) int32: each view's (H, W); the per-pixel arrays are padded to the
                              largest view (zeros) so that views of any shape share one array
        images                (V, H, W, 3) uint8: the views as the network saw them
        panoptic              (V, H, W) int32 segment ids, 0 = void
        panoptic_conf         (V, H, W) float32
        confidence            (V, H, W) float32 point confidence
        pts3d, pts3d_local    (V, H, W, 3) float32
        focal                 (V,) float32
        cam_to_world          (V, 4, 4) float32
    panoptic/<view>.png       segment ids, RGB-encoded (COCO panoptic), written as each view's maps arrive
    panoptic_vis/<view>.png   the view blended with one colour per segment (written at the end)
    segments.json, panoptic.json, cameras.json   as `prediction_export`, written at the end

Every per-view array is chunked one view per chunk and written once; nothing is sharded, because a shard
would be rewritten whole at every view written into it. There is no point cloud (PLY/GLB): for thousands of
views it is a separate, thinned export of the stored pointmaps.

The post-processor's mask logits, which it needs again after seeing every view, wait in the partial
folder's `_scratch/` instead of host memory (removed before the commit).

Atomicity: everything is written under a hidden sibling `.<name>.partial-<id>` and renamed to the output
folder at the end; an error removes the partial folder and a killed run leaves only that hidden folder
(safe to delete). An existing output folder is replaced only when it is empty or a streamed prediction.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr
from PIL import Image
from zarr.codecs import ZstdCodec
from zarr.storage import LocalStore

from datasets.prediction_export import (
    ExportedFiles,
    cameras_document,
    coco_panoptic_document,
    file_stems,
    overlay_segments,
    segment_color_map,
    segments_document,
    write_json,
)
from datasets.segment_colors import ids_to_rgb
from panst3r_core.classes.vocabulary import SETS_WITH_STUFF
from panst3r_core.reconstruction import PanopticReconstruction
from panst3r_core.reconstruction_sink import GeometryChunk, PanopticChunk, ReconstructionSink

LOG = logging.getLogger(__name__)

ZARR_NAME = "prediction.zarr"
SCRATCH_NAME = "_scratch"  # the post-processor's mask logits between passes (sink.scratch_dir); not committed
FORMAT_NAME = "panst3r-streamed-prediction"
FORMAT_VERSION = 1

# name -> (dtype, trailing dims after (H, W)); the leading axis is the view axis
PIXEL_ARRAYS: dict[str, tuple[str, tuple[int, ...]]] = {
    "images": ("uint8", (3,)),
    "panoptic": ("int32", ()),
    "panoptic_conf": ("float32", ()),
    "confidence": ("float32", ()),
    "pts3d": ("float32", (3,)),
    "pts3d_local": ("float32", (3,)),
}
GEOMETRY_ARRAYS = ("images", "confidence", "pts3d", "pts3d_local")
PANOPTIC_ARRAYS = ("panoptic", "panoptic_conf")


def _compressors() -> list:
    # level 1: the float pointmaps barely compress at any level, and the writer must keep up with the GPU
    return [ZstdCodec(level=1)]


@dataclass
class StreamExportOptions:
    """What the streamed export writes besides the Zarr group."""

    visualisations: bool = True  # panoptic_vis/ PNGs (read back from the group at the end)
    overlay_alpha: float = 0.5  # weight of the segment colour in panoptic_vis
    palette_seed: int = 0  # segment colours are deterministic for a given seed
    class_sets: tuple[str, ...] = SETS_WITH_STUFF  # decide `isthing` in panoptic.json (see ExportOptions)


class StreamingExport(ReconstructionSink):
    """Writes each chunk as it arrives and commits the folder at `finish`. Use as a context manager so that
    a failed run removes its partial folder:

        with StreamingExport(out) as sink:
            predictor.predict(source, sink=sink, ...)
    """

    def __init__(self, out_dir: str | Path, options: StreamExportOptions | None = None) -> None:
        self.out = Path(out_dir)
        self.options = options or StreamExportOptions()
        check_replaceable(self.out)  # refuse before the model runs, not after
        self.partial = self.out.parent / f".{self.out.name}.partial-{uuid.uuid4().hex[:12]}"
        self.group: zarr.Group | None = None
        self.shapes: list[tuple[int, int]] = []
        self.stems: list[str] = []
        self.seen: dict[str, np.ndarray] = {}
        self.files = ExportedFiles(out_dir=self.out)
        self.committed = False
        self.scratch_dir = self.partial / SCRATCH_NAME

    def __enter__(self) -> StreamingExport:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if not self.committed:
            self.discard()

    # ------------------------------------------------------------------ ReconstructionSink

    def start(self, num_views: int, shapes: list[tuple[int, int]], view_names: list[str]) -> None:
        self.shapes = [(int(h), int(w)) for h, w in shapes]
        self.stems = file_stems(list(view_names), num_views)
        self.partial.mkdir(parents=True)
        (self.partial / "panoptic").mkdir()
        self.scratch_dir.mkdir()
        self.group = zarr.open_group(store=LocalStore(self.partial / ZARR_NAME), mode="w")
        self._create_arrays(num_views)
        self.seen = {stage: np.zeros(num_views, dtype=bool) for stage in ("geometry", "panoptic")}

    def add_geometry(self, chunk: GeometryChunk) -> None:
        self._mark("geometry", chunk.indices)
        for j, view in enumerate(chunk.indices):
            for name in GEOMETRY_ARRAYS:
                self._write_pixels(name, view, getattr(chunk, name)[j])
        first, last = chunk.indices[0], chunk.indices[-1] + 1  # chunks are consecutive views
        self.group["focal"][first:last] = np.asarray(chunk.focal, dtype=np.float32)
        self.group["cam_to_world"][first:last] = np.asarray(chunk.cam_to_world, dtype=np.float32)

    def add_panoptic(self, chunk: PanopticChunk) -> None:
        self._mark("panoptic", chunk.indices)
        for j, view in enumerate(chunk.indices):
            ids = chunk.panoptic[j]
            self._write_pixels("panoptic", view, ids)
            self._write_pixels("panoptic_conf", view, chunk.panoptic_conf[j])
            png = self.partial / "panoptic" / f"{self.stems[view]}.png"
            Image.fromarray(ids_to_rgb(ids)).save(png)

    def finish(self, summary: PanopticReconstruction) -> None:
        for stage, seen in self.seen.items():
            if not seen.all():
                missing = np.flatnonzero(~seen)[:5].tolist()
                raise ValueError(
                    f"the stream ended without the {stage} of views {missing}; nothing committed"
                )
        shutil.rmtree(self.scratch_dir)  # the predictor is done with it
        self.group.attrs.update(self._attributes(summary))
        if self.options.visualisations:
            self._write_visualisations(summary)
        self._write_documents(summary)
        self._commit()

    def summary_lines(self) -> list[str]:
        """Human-readable lines 'what -> where' for the CLI summary."""
        return [
            f"per-view arrays (Zarr, {len(self.stems)} views): {self.out / ZARR_NAME}",
            f"panoptic id maps ({len(self.files.panoptic_pngs)} PNG): {self.out / 'panoptic'}",
            f"visualisations ({len(self.files.visualisations)} PNG): {self.out / 'panoptic_vis'}",
            f"segments: {self.files.segments_json}",
            f"COCO panoptic annotations: {self.files.coco_json}",
            f"cameras: {self.files.cameras_json}",
        ]

    # ------------------------------------------------------------------ helpers

    def discard(self) -> None:
        """Remove the partial folder (a failed or abandoned run)."""
        if self.partial.exists():
            shutil.rmtree(self.partial, ignore_errors=True)

    def _create_arrays(self, num_views: int) -> None:
        height = max(h for h, _ in self.shapes)
        width = max(w for _, w in self.shapes)
        for name, (dtype, trailing) in PIXEL_ARRAYS.items():
            shape = (num_views, height, width, *trailing)
            self.group.create_array(
                name,
                shape=shape,
                dtype=dtype,
                chunks=(1, *shape[1:]),
                compressors=_compressors(),
                fill_value=0,
            )
        self.group.create_array("focal", shape=(num_views,), dtype="float32", chunks=(1,), fill_value=0)
        self.group.create_array(
            "cam_to_world", shape=(num_views, 4, 4), dtype="float32", chunks=(1, 4, 4), fill_value=0
        )
        shape_array = self.group.create_array(
            "shape", shape=(num_views, 2), dtype="int32", chunks=(num_views, 2)
        )
        shape_array[...] = np.asarray(self.shapes, dtype=np.int32).reshape(num_views, 2)

    def _mark(self, stage: str, indices: list[int]) -> None:
        seen = self.seen[stage]
        if any(seen[i] for i in indices):
            raise ValueError(
                f"views {indices} arrived twice in the {stage} stream; the stream is inconsistent"
            )
        seen[indices] = True

    def _write_pixels(self, name: str, view: int, data: np.ndarray) -> None:
        height, width = self.shapes[view]
        if tuple(data.shape[:2]) != (height, width):
            raise ValueError(
                f"view {view}: {name} is {data.shape[:2]}, the stream announced {(height, width)}"
            )
        self.group[name][view, :height, :width] = data

    def _attributes(self, summary: PanopticReconstruction) -> dict:
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "views": list(self.stems),
            "class_names": list(summary.class_names),
            "keyframes": [int(k) for k in summary.keyframes],
            "postprocess": summary.postprocess,
            "segments": [
                {k: v for k, v in segment.to_dict().items() if k != "area_per_view"}
                for segment in summary.segments
            ],
        }

    def _write_visualisations(self, summary: PanopticReconstruction) -> None:
        folder = self.partial / "panoptic_vis"
        folder.mkdir()
        colors = segment_color_map(summary, self.options.palette_seed)
        for view, stem in enumerate(self.stems):  # read back one view at a time: memory stays one view
            height, width = self.shapes[view]
            image = self.group["images"][view, :height, :width]
            ids = self.group["panoptic"][view, :height, :width]
            vis = overlay_segments(image, ids, colors, self.options.overlay_alpha)
            Image.fromarray(vis).save(folder / f"{stem}.png")
            self.files.visualisations.append(self.out / "panoptic_vis" / f"{stem}.png")

    def _write_documents(self, summary: PanopticReconstruction) -> None:
        documents = {
            "segments.json": segments_document(summary, self.stems),
            "panoptic.json": coco_panoptic_document(
                summary, self.stems, self.options.class_sets, self.shapes
            ),
            "cameras.json": cameras_document(summary, self.stems, self.shapes),
        }
        for name, document in documents.items():
            write_json(self.partial / name, document)
        self.files.segments_json = self.out / "segments.json"
        self.files.coco_json = self.out / "panoptic.json"
        self.files.cameras_json = self.out / "cameras.json"
        self.files.panoptic_pngs = [self.out / "panoptic" / f"{stem}.png" for stem in self.stems]

    def _commit(self) -> None:
        """Rename the partial folder into place; an older streamed prediction there is swapped aside first
        and deleted after (two renames: a reader sees the old folder, nothing, or the new one)."""
        check_replaceable(self.out)  # something may have appeared there while the model ran
        aside = None
        if self.out.exists():
            aside = self.out.parent / f".{self.out.name}.old-{uuid.uuid4().hex[:12]}"
            os.rename(self.out, aside)
        os.rename(self.partial, self.out)
        _fsync_folder(self.out.parent)
        self.committed = True
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)


def check_replaceable(out: Path) -> None:
    """Raise ValueError unless `out` is absent, an empty folder or an earlier streamed prediction (which a
    new run replaces whole, so it must not hold anything else of the user's)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder; choose another --out")
    entries = sorted(p.name for p in out.iterdir())
    if not entries or is_streamed_prediction(out):
        return
    raise ValueError(
        f"--out {out} already holds {', '.join(entries[:5])}{', ...' if len(entries) > 5 else ''}, which is "
        "not a streamed prediction; a streamed run replaces its output folder whole, so pass a new or "
        "empty folder"
    )


def is_streamed_prediction(folder: Path) -> bool:
    """Whether `folder` is a committed output of `StreamingExport`."""
    try:
        group = zarr.open_group(store=LocalStore(folder / ZARR_NAME, read_only=True), mode="r")
    except (FileNotFoundError, ValueError, OSError, zarr.errors.GroupNotFoundError):
        return False
    return group.attrs.get("format") == FORMAT_NAME


def _fsync_folder(folder: Path) -> None:
    # Make the rename durable; after this a crash cannot bring the partial name back.
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
