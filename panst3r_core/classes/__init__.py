"""Class vocabularies: built-in sets (ScanNet++ top-100, COCO-panoptic 133, ADE20k-150) and their union."""

from panst3r_core.classes.vocabulary import (
    COCO_NUM_THINGS,
    SCANNETPP_STUFF,
    class_set_names,
    dedup_preserving_order,
    load_class_set,
    thing_flags,
    union_class_sets,
)

__all__ = [
    "COCO_NUM_THINGS",
    "SCANNETPP_STUFF",
    "class_set_names",
    "dedup_preserving_order",
    "load_class_set",
    "thing_flags",
    "union_class_sets",
]
