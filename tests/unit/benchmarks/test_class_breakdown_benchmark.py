"""The class-breakdown benchmark's pooling and size bins, on hand-made per-class tables."""

from __future__ import annotations

import pandas as pd
import pytest
from benchmark_scripts import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("class_breakdown")


def _table(rows):
    columns = ["class_id", "class_name", "isthing", "PQ", "SQ", "RQ", "scenes", "scenes_matched"]
    return pd.DataFrame(rows, columns=columns)


def test_pooling_weights_each_evaluation_by_the_scenes_that_hold_the_class(bench):
    first = _table([(5, "chair", True, 0.6, 0.8, 0.75, 3, 2), (0, "wall", False, 0.9, 0.9, 1.0, 4, 4)])
    second = _table([(5, "chair", True, 0.2, 0.4, 0.5, 1, 1), (7, "lamp", True, 0.0, 0.0, 0.0, 0, 0)])
    pooled = bench.pooled_per_class([first, second]).set_index("class_name")
    assert "lamp" not in pooled.index  # a class in no scene carries no weight
    assert pooled.loc["chair", "scenes"] == 4 and pooled.loc["chair", "scenes_matched"] == 3
    assert pooled.loc["chair", "PQ"] == pytest.approx((0.6 * 3 + 0.2 * 1) / 4)
    assert pooled.loc["chair", "RQ"] == pytest.approx((0.75 * 3 + 0.5 * 1) / 4)
    assert pooled.loc["wall", "PQ"] == pytest.approx(0.9)
    assert list(pooled["PQ"]) == sorted(pooled["PQ"])  # worst first


def test_areas_join_by_category_and_things_fall_in_their_size_bin(bench):
    pooled = bench.pooled_per_class(
        [
            _table(
                [
                    (5, "chair", True, 0.5, 0.6, 0.8, 2, 1),
                    (6, "mug", True, 0.1, 0.5, 0.2, 2, 0),
                    (0, "wall", False, 0.9, 0.9, 1.0, 2, 2),
                ]
            )
        ]  # fmt: skip
    )
    table = bench.with_areas(pooled, {5: [0.04, 0.06, 0.05], 6: [0.002], 0: [0.3]}, class_offset=0)
    rows = table.set_index("class_name")
    assert rows.loc["chair", "objects"] == 3 and rows.loc["chair", "median_area"] == pytest.approx(0.05)
    assert rows.loc["mug", "median_area"] == pytest.approx(0.002)
    summary = {row["median_area"]: row for row in bench.size_summary(table)}
    assert summary["0%-1%"]["classes"] == 1 and summary["0%-1%"]["PQ"] == pytest.approx(0.1)
    assert summary["0%-1%"]["matched_share"] == 0.0
    assert summary["3%-10%"]["classes"] == 1 and summary["3%-10%"]["RQ"] == pytest.approx(0.8)
    assert summary["10%-100%"]["classes"] == 0 and summary["10%-100%"]["PQ"] is None  # stuff is left out


def test_a_class_without_ground_truth_objects_has_no_area(bench):
    pooled = bench.pooled_per_class([_table([(9, "sink", True, 0.0, 0.0, 0.0, 1, 0)])])
    table = bench.with_areas(pooled, {}, class_offset=0)
    assert table.loc[0, "objects"] == 0 and pd.isna(table.loc[0, "median_area"])
    assert all(row["classes"] == 0 for row in bench.size_summary(table))
