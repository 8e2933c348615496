"""The output of every post-processor: per-view segment-id maps shared across views."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch


@dataclass
class SegmentInfo:
    """One panoptic segment; its `id` is the same in every view it appears in."""

    id: int
    """Segment id written in the `pan` maps (1, 2, ...; 0 is void)."""
    query_id: int
    """Index of the query (0..Q-1) that produced the segment."""
    category_id: int
    """Index into the class list given to the model."""
    score: float
    """Class probability of `category_id` for this query."""
    area: int
    """Number of pixels of the segment, summed over all views."""
    mask_conf: float | None = None
    """Mean mask confidence over the segment's pixels (QUBO only)."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["mask_conf"] is None:
            del data["mask_conf"]
        return data


@dataclass
class PanopticResult:
    """Per-view panoptic maps of one scene.

    pan[v]: (H_v, W_v) int32 segment ids (0 = void); conf[v]: (H_v, W_v) float32 mask confidence.
    """

    pan: list[torch.Tensor]
    conf: list[torch.Tensor]
    segments_info: list[SegmentInfo] = field(default_factory=list)

    @property
    def num_views(self) -> int:
        return len(self.pan)

    def segments_as_dicts(self) -> list[dict[str, Any]]:
        return [segment.to_dict() for segment in self.segments_info]
