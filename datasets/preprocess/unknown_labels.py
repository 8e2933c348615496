"""Unknown labels of a preprocessed scene: segGroup labels that are neither benchmark classes nor rows of
map_benchmark.csv, left void as the official script does, and what they cover.

The vertex counts come from the semantics (`VertexPanoptic.unknown_vertices`). The pixel count comes from the
render itself: faces those labels leave void are drawn with a marker id that no segment uses, counted in
every frame and cleared to 0 before anything else reads the ids, so the stored frames are exactly what the
official script writes (the same geometry is drawn, only the colour of those faces differs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from datasets.preprocess.panoptic import MAX_ENCODABLE_ID


@dataclass(frozen=True)
class UnknownLabelReport:
    """What one scene's unknown labels cover. Stored in the scene's attrs (`to_attrs`) and the scenes table."""

    vertices_by_label: dict[str, int] = field(default_factory=dict)
    """Label -> vertices of its groups left void, by label."""
    vertices: int = 0
    """Distinct mesh vertices left void by any unknown label."""
    pixels: int = 0
    """Pixels, summed over the scene's frames, whose visible surface is such a void face (before the
    anonymisation mask)."""

    @property
    def labels(self) -> list[str]:
        return sorted(self.vertices_by_label)

    def to_attrs(self) -> dict[str, Any]:
        return {
            "labels": dict(sorted(self.vertices_by_label.items())),
            "vertices": self.vertices,
            "pixels": self.pixels,
        }

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any] | None) -> UnknownLabelReport:
        """The report `to_attrs` wrote; an empty one for None or {}."""
        attrs = attrs or {}
        labels = {str(k): int(v) for k, v in (attrs.get("labels") or {}).items()}
        return cls(labels, int(attrs.get("vertices", 0)), int(attrs.get("pixels", 0)))

    def label_list(self) -> str:
        """The labels quoted and comma-separated (labels are free text and may hold commas themselves)."""
        return ", ".join(repr(label) for label in self.labels)

    def describe(self) -> str:
        """e.g. `'statue' (120 vertices), 'vase' (30 vertices): 150 mesh vertices, 3456 pixels left void`
        (pixels summed over the scene's frames); one label is named without its own count."""
        if len(self.vertices_by_label) == 1:
            labels = self.label_list()
        else:
            labels = ", ".join(
                f"{label!r} ({count} vertices)" for label, count in sorted(self.vertices_by_label.items())
            )
        return f"{labels}: {self.vertices} mesh vertices, {self.pixels} pixels left void"

    def warning(self, scene_id: str) -> str:
        """The one warning line for a scene with unknown labels."""
        return (
            f"scene {scene_id}: segments_anno.json label(s) {self.describe()}; they are neither benchmark "
            "classes nor rows of map_benchmark.csv, so they stay void as in the official script (add a row per "
            "label to map_benchmark.csv to map them, or preprocess with --unknown-labels error to fail such scenes)"
        )


class UnknownFaceMarker:
    """Per-vertex ids to render with the unknown labels' void faces marked, and per frame the count + clear.

    pan_ids: (N,) the scene's vertex ids; unknown_void: (N,) bool or None (no unknown label)."""

    def __init__(self, pan_ids: np.ndarray, unknown_void: np.ndarray | None):
        self.marker: int | None = None
        self.render_ids = pan_ids
        if unknown_void is not None and unknown_void.any():
            self.marker = unused_id(pan_ids)
            self.render_ids = np.where(unknown_void, self.marker, pan_ids)

    def clear(self, ids: np.ndarray) -> tuple[np.ndarray, int]:
        """(H, W) rendered ids -> (the ids with marked pixels void, how many pixels were marked)."""
        if self.marker is None:
            return ids, 0
        marked = ids == self.marker
        count = int(np.count_nonzero(marked))
        return (np.where(marked, np.uint32(0), ids) if count else ids), count


def unused_id(ids: np.ndarray) -> int:
    """The largest RGB-encodable id not among `ids` (there are at most len(unique ids) taken)."""
    taken = np.unique(ids)
    candidates = MAX_ENCODABLE_ID - np.arange(len(taken) + 1)
    return int(candidates[~np.isin(candidates, taken)][0])
