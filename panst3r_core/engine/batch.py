"""The training batch contract between the data loader and the loop."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch

from panst3r_core.losses.sample_objects import BatchObjects

REQUIRED_KEYS = ("images", "true_shape", "pan_inst_id", "pan_cls_id", "class_set")
GEOMETRY_KEYS = ("depth", "camera_intrinsics", "camera_pose", "memory_num_views")
OBJECTS_KEY = "objects"


@dataclass
class TrainBatch:
    """One batch of multi-view samples.

    images: (B, N, 3, H, W) float in [-1, 1]; true_shape: (B, N, 2) int (H, W) per view;
    pan_inst_id / pan_cls_id: (B, N, H, W) int (instance id, 0 = void; local class id);
    class_set: B class sets (';'-joined names or lists), one per sample's dataset.
    Geometry, needed by the pointmap objective only: depth (B, N, H, W) metres (0 = invalid),
    camera_intrinsics (B, N, 3, 3) (COLMAP pixel convention: pixel centres at +0.5), camera_pose (B, N, 4, 4) camera-to-world (OpenCV axes), memory_num_views
    (B,) int (the sampler's draw for the batch).
    objects: each sample's objects, found by the loader's workers (the store loader's collate does); they stay
    on the host, and without them the panoptic loss finds the objects on the device, at a cost of device
    synchronisations.
    """

    images: torch.Tensor
    true_shape: torch.Tensor
    pan_inst_id: torch.Tensor
    pan_cls_id: torch.Tensor
    class_set: Sequence[str | Sequence[str]]
    depth: torch.Tensor | None = None
    camera_intrinsics: torch.Tensor | None = None
    camera_pose: torch.Tensor | None = None
    memory_num_views: torch.Tensor | None = None
    objects: BatchObjects | None = None

    @classmethod
    def from_any(cls, batch: TrainBatch | Mapping[str, Any]) -> TrainBatch:
        """Accept a TrainBatch or a mapping with the same keys (`img` is accepted for `images`)."""
        if isinstance(batch, TrainBatch):
            return batch
        if not isinstance(batch, Mapping):
            raise ValueError(
                f"training batch: expected a TrainBatch or a mapping, got {type(batch).__name__}"
            )
        data = dict(batch)
        if "images" not in data and "img" in data:
            data["images"] = data["img"]
        missing = [key for key in REQUIRED_KEYS if key not in data]
        if missing:
            raise ValueError(
                f"training batch: missing key(s) {', '.join(missing)}; the loader must yield {', '.join(REQUIRED_KEYS)}"
            )
        optional = GEOMETRY_KEYS + (OBJECTS_KEY,)
        return cls(**{key: data[key] for key in REQUIRED_KEYS + optional if key in data})

    def require_geometry(self) -> None:
        """Raise when a geometry field is missing (the loader must be the store dataset or provide them)."""
        missing = [key for key in GEOMETRY_KEYS if getattr(self, key) is None]
        if missing:
            raise ValueError(
                f"training batch: the pointmap objective needs {', '.join(missing)}; the loader must yield "
                f"{', '.join(GEOMETRY_KEYS)} (the store dataset does)"
            )

    def to(self, device: torch.device) -> TrainBatch:
        moved = {
            field.name: value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
            for field in fields(self)
            for value in [getattr(self, field.name)]
        }
        return TrainBatch(**moved)
