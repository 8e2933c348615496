"""The generated vocabulary and mapping follow the official benchmark and its rules."""

from __future__ import annotations

from datasets.scannetpp.semantics import MappingRow, build_label_map
from datasets.synthetic.classes import (
    CATALOGUE,
    CROWD_LABELS,
    TOP100,
    TOP100_INSTANCE,
    UNMAPPED_LABELS,
    mapping_rows,
)
from datasets.synthetic.furniture import SHAPES


def test_benchmark_lists():
    assert len(TOP100) == 100 and len(set(TOP100)) == 100
    assert TOP100[:3] == ["wall", "ceiling", "floor"] and TOP100[99] == "marker"
    assert len(TOP100_INSTANCE) == 84 and "wall" not in TOP100_INSTANCE and "door" in TOP100_INSTANCE


def test_catalogue_classes_are_benchmark_classes_with_known_shapes():
    for name, spec in CATALOGUE.items():
        assert name in TOP100
        assert spec.shape in SHAPES
        assert all(lo <= hi for lo, hi in spec.size)
        assert spec.palette and spec.patterns


def test_mapping_rows_give_things_stuff_crowd_and_unmapped_labels():
    rows = [MappingRow(c, s or None, i or None) for c, _, s, i in mapping_rows()]
    label_map = build_label_map(list(TOP100), list(TOP100_INSTANCE), rows)
    assert label_map.crowd_labels == set(CROWD_LABELS)
    assert all(label not in label_map.label_to_class for label in UNMAPPED_LABELS)
    assert label_map.label_to_class["desk"] == TOP100.index("table")
    assert label_map.label_to_class["window sill"] == TOP100.index("windowsill")
    for spec in CATALOGUE.values():
        for label in spec.labels:
            assert label_map.label_to_class[label] == TOP100.index(spec.class_name)
