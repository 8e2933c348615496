"""The result of `Predictor.predict`: a panoptic 3-D reconstruction of a set of views, on the CPU as numpy.

Per-view arrays are lists because views may have different resolutions (different aspect ratios).
Nothing here writes files; `datasets.prediction_export` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Segment:
    """One panoptic segment, shared by every view it appears in (multi-view consistent id)."""

    id: int  # value in the panoptic id maps (1, 2, ...; 0 = void)
    query_id: int  # mask-transformer query that produced it
    class_id: int  # index into PanopticReconstruction.class_names
    class_name: str
    score: float  # class probability of the query (sigmoid)
    area_per_view: list[int]  # pixel count in each view (0 where absent)

    @property
    def area(self) -> int:
        return int(sum(self.area_per_view))

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "query_id": self.query_id,
            "class_id": self.class_id,
            "class_name": self.class_name,
            "score": self.score,
            "area": self.area,
            "area_per_view": list(self.area_per_view),
        }


@dataclass
class PanopticReconstruction:
    """Everything predicted for V views. Shapes per view v: (H_v, W_v) = the network input resolution."""

    images: list[np.ndarray]  # (H, W, 3) uint8: the resized views the model saw
    panoptic: list[np.ndarray]  # (H, W) int32 segment ids, 0 = void
    panoptic_conf: list[np.ndarray]  # (H, W) float32 mask confidence of the owning segment
    pts3d: list[np.ndarray]  # (H, W, 3) float32 points in the world frame (= first keyframe's camera)
    pts3d_local: list[np.ndarray]  # (H, W, 3) float32 points in the view's own camera frame
    confidence: list[np.ndarray]  # (H, W) float32 point confidence (1 + exp(c), >= 1)
    focal: np.ndarray  # (V,) float32 focal length in pixels
    cam_to_world: np.ndarray  # (V, 4, 4) float32 camera-to-world (OpenCV axes)
    segments: list[Segment]
    class_names: list[str]
    keyframes: list[int]  # indices of the keyframe views
    postprocess: str  # name of the post-processing used
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    view_names: list[str] = field(default_factory=list)  # e.g. the input file stems
    raw: dict[str, np.ndarray] = field(default_factory=dict)  # raw model outputs (see Predictor)

    @property
    def num_views(self) -> int:
        return len(self.images)

    def principal_points(self) -> np.ndarray:
        """(V, 2) principal point (cx, cy) in pixels: the image centre, as assumed by the focal estimate."""
        return np.array([principal_point(*img.shape[:2]) for img in self.images], dtype=np.float32)


def principal_point(height: int, width: int) -> tuple[float, float]:
    """(cx, cy) of an (H, W) view: the image centre, which the focal estimate assumes."""
    return width / 2.0, height / 2.0
