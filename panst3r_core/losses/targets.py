"""Multi-view panoptic targets from per-view instance/class id maps.

Every non-zero instance id of a sample is one target: a binary mask over all of the sample's views (views in
which the object is absent get an all-false mask, so the loss teaches per-view visibility) and one class,
resolved by name through the sample dataset's class set into the global vocabulary. Instance id 0 is void;
void is never tested on the class id because class 0 is a real class ("wall" in ScanNet++).

Training finds each sample's objects in the loader's workers (`sample_objects`) and builds the targets with
`batch_targets_from_objects`; `prepare_targets` finds them where the ids are, for batches built without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from panst3r_core.losses.host_to_device import host_to_device
from panst3r_core.losses.sample_objects import BatchObjects, SampleObjects, find_sample_objects

CLASS_SET_SEPARATOR = ";"


@dataclass
class MultiViewTargets:
    """Targets of one sample.

    masks: (M, V, H, W) bool, one multi-view mask per object at full input resolution.
    labels: (M,) int64 indices into the global vocabulary.
    output_mask: (C,) bool, the global classes that belong to the sample's dataset.
    """

    masks: torch.Tensor
    labels: torch.Tensor
    output_mask: torch.Tensor

    @property
    def num_objects(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device | str) -> MultiViewTargets:
        return MultiViewTargets(self.masks.to(device), self.labels.to(device), self.output_mask.to(device))


def split_class_set(class_set: str | Sequence[str]) -> list[str]:
    """A class set is the dataset's class names in local-id order, as a list or ';'-joined string."""
    if isinstance(class_set, str):
        return class_set.split(CLASS_SET_SEPARATOR)
    return list(class_set)


def find_class_set_objects(
    inst_ids: torch.Tensor, cls_ids: torch.Tensor, class_set: str | Sequence[str]
) -> SampleObjects:
    """A sample's objects (`find_sample_objects`), its local class ids bounded by its class set's size."""
    return find_sample_objects(inst_ids, cls_ids, len(split_class_set(class_set)))


def vocabulary_lookup(vocabulary: Sequence[str]) -> dict[str, int]:
    lookup: dict[str, int] = {}
    for index, name in enumerate(vocabulary):
        if name in lookup:
            raise ValueError(
                f"vocabulary: class name {name!r} appears twice (indices {lookup[name]} and {index})"
            )
        lookup[name] = index
    return lookup


def local_to_global_classes(class_set: str | Sequence[str], vocabulary: Sequence[str]) -> torch.Tensor:
    """(K,) int64: global vocabulary index of each local class id of `class_set`."""
    lookup = vocabulary_lookup(vocabulary)
    names = split_class_set(class_set)
    missing = [name for name in names if name not in lookup]
    if missing:
        raise ValueError(
            f"class_set: class name(s) {missing[:5]} are not in the global vocabulary of {len(lookup)} "
            "classes; build the vocabulary from the union of every training dataset's classes"
        )
    return torch.tensor([lookup[name] for name in names], dtype=torch.int64)


def output_mask_for(class_set: str | Sequence[str], vocabulary: Sequence[str]) -> torch.Tensor:
    """(C,) bool: True for the global classes of this dataset (others get no class loss)."""
    return _output_mask(local_to_global_classes(class_set, vocabulary), len(vocabulary))


def _output_mask(local_to_global: torch.Tensor, num_classes: int) -> torch.Tensor:
    mask = torch.zeros(num_classes, dtype=torch.bool)
    mask[local_to_global] = True
    return mask


def object_masks(inst_ids: torch.Tensor, object_ids: torch.Tensor) -> torch.Tensor:
    """(M, V, H, W) bool: one multi-view mask per object id, from (V, H, W) instance ids."""
    return inst_ids.unsqueeze(0) == object_ids.view(-1, 1, 1, 1).to(inst_ids.dtype)


def prepare_targets(
    inst_ids: torch.Tensor,
    cls_ids: torch.Tensor,
    class_set: str | Sequence[str],
    vocabulary: Sequence[str],
) -> MultiViewTargets:
    """Targets of one sample, its objects found where the ids are (on a GPU: device synchronisations).

    inst_ids: (V, H, W) integer instance ids, 0 = void; ids are shared across the views of a scene.
    cls_ids: (V, H, W) integer local class ids (index into `class_set`).
    """
    local_to_global = local_to_global_classes(class_set, vocabulary)
    objects = find_sample_objects(inst_ids, cls_ids, local_to_global.numel())
    return MultiViewTargets(
        masks=object_masks(inst_ids, objects.ids),
        labels=local_to_global.to(inst_ids.device)[objects.local_classes],
        output_mask=_output_mask(local_to_global, len(vocabulary)).to(inst_ids.device),
    )


def prepare_batch_targets(
    inst_ids: torch.Tensor,
    cls_ids: torch.Tensor,
    class_sets: Sequence[str | Sequence[str]],
    vocabulary: Sequence[str],
) -> list[MultiViewTargets]:
    """Targets of a batch: inst_ids / cls_ids (B, V, H, W), one class set per sample."""
    _check_class_sets(class_sets, inst_ids.shape[0])
    return [
        prepare_targets(inst_ids[b], cls_ids[b], class_sets[b], vocabulary) for b in range(inst_ids.shape[0])
    ]


def batch_targets_from_objects(
    inst_ids: torch.Tensor,
    objects: BatchObjects,
    class_sets: Sequence[str | Sequence[str]],
    vocabulary: Sequence[str],
) -> list[MultiViewTargets]:
    """The targets of `prepare_batch_targets`, from objects found beforehand on the host: every size is known
    to the host, so the device only compares ids (no synchronisation).

    inst_ids: (B, V, H, W) on the training device; objects: the host's `BatchObjects` of these samples.
    """
    batch = inst_ids.shape[0]
    _check_class_sets(class_sets, batch)
    if len(objects.counts) != batch:
        raise ValueError(
            f"objects: found for {len(objects.counts)} samples, the batch has {batch}; pack the objects of "
            "this batch's samples"
        )
    lookups = [local_to_global_classes(class_set, vocabulary) for class_set in class_sets]
    local_classes = objects.local_classes.split(objects.counts)
    labels = torch.cat([lookup[classes] for lookup, classes in zip(lookups, local_classes)])
    output_masks = torch.stack([_output_mask(lookup, len(vocabulary)) for lookup in lookups])
    device = inst_ids.device
    ids = host_to_device(objects.ids.to(inst_ids.dtype), device).split(objects.counts)
    labels = host_to_device(labels, device).split(objects.counts)
    output_masks = host_to_device(output_masks, device)
    return [
        MultiViewTargets(object_masks(inst_ids[b], ids[b]), labels[b], output_masks[b]) for b in range(batch)
    ]


def _check_class_sets(class_sets: Sequence[str | Sequence[str]], batch: int) -> None:
    if len(class_sets) != batch:
        raise ValueError(f"class_set: got {len(class_sets)} class sets for a batch of {batch}")
