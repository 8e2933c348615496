"""The training batch contract between the data loader and the loop."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

REQUIRED_KEYS = ("images", "true_shape", "pan_inst_id", "pan_cls_id", "class_set")


@dataclass
class TrainBatch:
    """One batch of multi-view samples.

    images: (B, N, 3, H, W) float in [-1, 1]; true_shape: (B, N, 2) int (H, W) per view;
    pan_inst_id / pan_cls_id: (B, N, H, W) int (instance id, 0 = void; local class id);
    class_set: B class sets (';'-joined names or lists), one per sample's dataset.
    """

    images: torch.Tensor
    true_shape: torch.Tensor
    pan_inst_id: torch.Tensor
    pan_cls_id: torch.Tensor
    class_set: Sequence[str | Sequence[str]]

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
        return cls(**{key: data[key] for key in REQUIRED_KEYS})

    def to(self, device: torch.device) -> TrainBatch:
        return TrainBatch(
            images=self.images.to(device, non_blocking=True),
            true_shape=self.true_shape.to(device, non_blocking=True),
            pan_inst_id=self.pan_inst_id.to(device, non_blocking=True),
            pan_cls_id=self.pan_cls_id.to(device, non_blocking=True),
            class_set=self.class_set,
        )
