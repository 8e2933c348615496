"""Clutter for ScanNet++-like object counts: reached, every label a benchmark class, and rooms that ask
for no more objects than the base room has are unchanged."""

from __future__ import annotations

import numpy as np

from datasets.synthetic.classes import TOP100, mapping_rows
from datasets.synthetic.layout import build_layout


def test_min_objects_adds_clutter_with_benchmark_labels():
    layout = build_layout(np.random.default_rng([3, 0]), min_objects=200)
    assert len(layout.objects) >= 200
    known = set(TOP100) | {row[0] for row in mapping_rows()}
    unknown = {o.label for o in layout.objects} - known - {"object"}  # "object": the deliberate unmapped one
    assert not unknown
    labels = [o.label for o in layout.objects]
    assert labels.count("shelf") >= 5 and labels.count("wall") == 4


def test_min_objects_below_the_base_count_changes_nothing():
    base = build_layout(np.random.default_rng([5, 0]))
    same = build_layout(np.random.default_rng([5, 0]), min_objects=len(base.objects))
    assert [o.label for o in same.objects] == [o.label for o in base.objects]
    for a, b in zip(base.objects, same.objects):
        np.testing.assert_array_equal(a.vertices, b.vertices)
        np.testing.assert_array_equal(a.colors, b.colors)
