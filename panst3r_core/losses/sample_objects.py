"""The objects of multi-view samples: each sample's distinct instance ids and the local class each one carries.

This is the data-dependent part of the targets (a sort of every labelled pixel, with sizes only the data
knows). The loader's workers compute it on the CPU, per sample, so that the training step is left with
fixed-size device work (`targets.batch_targets_from_objects`); run on a GPU tensor, it costs device
synchronisations (class id range, unique sizes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

_PAIR_KEY_BASE = 2**31
"""key = instance * base + class: exact in int64 for |instance| < 2**31 and 0 <= class < 2**31 (ids are int32)."""


@dataclass(frozen=True)
class SampleObjects:
    """ids: (M,) int64 instance ids in ascending order (0, void, excluded);
    local_classes: (M,) int64 class id of each, an index into the sample's class_set."""

    ids: torch.Tensor
    local_classes: torch.Tensor


@dataclass(frozen=True)
class BatchObjects:
    """The objects of every sample of a batch, concatenated in sample order (host tensors: a loader sends two
    tensors a batch, not two a sample).

    ids, local_classes: (sum M,) int64; counts: M of each sample.
    """

    ids: torch.Tensor
    local_classes: torch.Tensor
    counts: tuple[int, ...]

    @classmethod
    def pack(cls, samples: Sequence[SampleObjects]) -> BatchObjects:
        return cls(
            ids=torch.cat([sample.ids for sample in samples]),
            local_classes=torch.cat([sample.local_classes for sample in samples]),
            counts=tuple(int(sample.ids.shape[0]) for sample in samples),
        )


def _check_id_maps(inst_ids: torch.Tensor, cls_ids: torch.Tensor) -> None:
    if inst_ids.shape != cls_ids.shape or inst_ids.dim() != 3:
        raise ValueError(
            f"pan_inst_id {tuple(inst_ids.shape)} and pan_cls_id {tuple(cls_ids.shape)} must both be (V, H, W)"
        )


def find_sample_objects(inst_ids: torch.Tensor, cls_ids: torch.Tensor, num_classes: int) -> SampleObjects:
    """The objects of one sample.

    inst_ids: (V, H, W) integer instance ids, 0 = void; ids are shared across the views of a scene.
    cls_ids: (V, H, W) integer local class ids, each below `num_classes` (the size of the sample's class_set).
    """
    _check_id_maps(inst_ids, cls_ids)
    inst_flat = inst_ids.reshape(-1).long()
    cls_flat = cls_ids.reshape(-1).long()
    labelled = inst_flat != 0
    instances, classes = inst_flat[labelled], cls_flat[labelled]
    if classes.numel():
        lowest, highest = torch.stack([classes.min(), classes.max()]).tolist()  # one device sync
        if lowest < 0 or highest >= num_classes:
            raise ValueError(
                f"pan_cls_id: class id {highest if highest >= num_classes else lowest} is outside the sample's "
                f"class_set of {num_classes} names; every local class id must index the store's categories "
                "(check the preprocessing of this scene)"
            )
    # The distinct (instance, class) pairs as one 1-D unique of packed keys, sorted by instance then class:
    # torch.unique(dim=1) over the pixels' pairs took 0.4 s a sample of 12 views on the CPU.
    pair_keys = torch.unique(instances * _PAIR_KEY_BASE + classes)
    object_ids, classes_per_object = torch.unique_consecutive(pair_keys // _PAIR_KEY_BASE, return_counts=True)
    if object_ids.numel() != pair_keys.numel():
        bad = object_ids[classes_per_object > 1].tolist()
        raise ValueError(
            f"pan_cls_id: instance id(s) {bad[:5]} carry more than one class id; every pixel of an instance "
            "must have the same class (check the preprocessing of this scene)"
        )
    return SampleObjects(ids=object_ids, local_classes=pair_keys % _PAIR_KEY_BASE)
