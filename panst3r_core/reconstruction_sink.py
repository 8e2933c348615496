"""Where a streamed prediction's per-view outputs go as they are produced (CPU numpy, one chunk at a time).

The order of calls, and why it has two per-view passes: the geometry of a chunk (points, confidence,
cameras, the views as the network saw them) is final as soon as the chunk leaves the network, but its
panoptic ids are known only after the post-processor has seen every view (segment acceptance sums over the
whole scene). So a sink gets

    start(num_views, shapes, view_names)
    add_geometry(chunk)   once per chunk, in view order, every view exactly once
    add_panoptic(chunk)   once per chunk, in view order, every view exactly once
    finish(summary)       the scene-level result (segments, classes, keyframes, cameras, timings) whose
                          per-view lists are empty: the per-view arrays went to the sink only

A sink that writes to disk keeps host memory bounded by one chunk. `CollectingSink` keeps everything and
gives back the usual in-memory `PanopticReconstruction`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from panst3r_core.reconstruction import PanopticReconstruction

PER_VIEW_GEOMETRY = ("images", "pts3d", "pts3d_local", "confidence")
PER_VIEW_PANOPTIC = ("panoptic", "panoptic_conf")


@dataclass
class GeometryChunk:
    """Views `indices` (consecutive): what the network gives before post-processing. Shapes as in
    `PanopticReconstruction`."""

    indices: list[int]
    images: list[np.ndarray]  # (H, W, 3) uint8
    pts3d: list[np.ndarray]  # (H, W, 3) float32, world frame
    pts3d_local: list[np.ndarray]  # (H, W, 3) float32, camera frame
    confidence: list[np.ndarray]  # (H, W) float32
    focal: np.ndarray  # (n,) float32
    cam_to_world: np.ndarray  # (n, 4, 4) float32


@dataclass
class PanopticChunk:
    """Views `indices` (consecutive): post-processed panoptic maps with the scene's final segment ids."""

    indices: list[int]
    panoptic: list[np.ndarray]  # (H, W) int32, 0 = void
    panoptic_conf: list[np.ndarray]  # (H, W) float32


class ReconstructionSink:
    """Receives a streamed prediction (see the module docstring for the order). Methods do nothing here."""

    # A folder (existing once `start` has returned) where the predictor may keep what it needs again later
    # instead of holding it in host memory: the post-processor's mask logits between its passes, which
    # otherwise grow with the views. None: host memory. The sink owns the folder and removes it.
    scratch_dir: Path | None = None

    def start(self, num_views: int, shapes: list[tuple[int, int]], view_names: list[str]) -> None:
        """Called once before any chunk: per-view (H, W) network shapes and names ([] when none given)."""

    def add_geometry(self, chunk: GeometryChunk) -> None:
        pass

    def add_panoptic(self, chunk: PanopticChunk) -> None:
        pass

    def finish(self, summary: PanopticReconstruction) -> None:
        pass


class CollectingSink(ReconstructionSink):
    """Keeps every chunk in memory and fills the summary's per-view lists: the whole-scene result."""

    def __init__(self) -> None:
        self.lists: dict[str, list[np.ndarray]] = {k: [] for k in PER_VIEW_GEOMETRY + PER_VIEW_PANOPTIC}
        self.result: PanopticReconstruction | None = None

    def add_geometry(self, chunk: GeometryChunk) -> None:
        for name in PER_VIEW_GEOMETRY:
            self.lists[name] += getattr(chunk, name)

    def add_panoptic(self, chunk: PanopticChunk) -> None:
        for name in PER_VIEW_PANOPTIC:
            self.lists[name] += getattr(chunk, name)

    def finish(self, summary: PanopticReconstruction) -> None:
        for name, arrays in self.lists.items():
            setattr(summary, name, arrays)
        self.result = summary
