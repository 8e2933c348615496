"""Panoptic id encoding, the official mask multiplication and the area / validity filter."""

from __future__ import annotations

import numpy as np
import pytest

from datasets.preprocess import panoptic
from datasets.preprocess.panoptic import MIN_INST_AREA, IdFilter, apply_anon_mask, filter_ids, id2rgb, rgb2id


def test_id_rgb_round_trip_and_channel_layout():
    ids = np.array([0, 1, 255, 256, 3 * 256 + 17, 65536 + 2, 2**24 - 1], dtype=np.uint32)
    rgb = id2rgb(ids)
    assert rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[4], [17, 3, 0])  # R = class, G + 256 B = instance (cls_sep 256)
    np.testing.assert_array_equal(rgb[5], [2, 0, 1])
    np.testing.assert_array_equal(rgb2id(rgb), ids)


def official_mask_multiplication(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The spec's statement, literally: colour * (mask / 255) cast to uint8, then rgb2id."""
    colour = id2rgb(ids)
    return rgb2id((colour * (mask[..., None] / 255)).astype(np.uint8))


def test_mask_multiplication_matches_the_official_formula():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 2**24, (40, 50)).astype(np.uint32)
    mask = rng.choice(np.array([0, 1, 77, 128, 254, 255], np.uint8), size=(40, 50))
    got = apply_anon_mask(ids, mask)
    np.testing.assert_array_equal(got, official_mask_multiplication(ids, mask))
    assert np.all(got[mask == 255] == ids[mask == 255])
    assert np.all(got[mask == 0] == 0)
    partial = (mask > 0) & (mask < 255)
    assert np.any(
        got[partial] != ids[partial]
    )  # border pixels really are corrupted, as in the official output


def test_filter_removes_small_and_invalid_ids():
    ids = np.zeros((20, 20), np.uint32)
    ids[:10] = 5 * 256 + 2  # 200 px, valid
    ids[10:12, :] = 9 * 256 + 1  # 40 px, valid but below MIN_INST_AREA
    ids[12:15, :] = 999  # 60 px, not a vertex id of the scene (e.g. a corrupted border colour)
    ids[15:, :5] = 3 * 256 + 4  # 25 px
    ids[15:, 5:] = 4 * 256 + 4  # 75 px
    valid = np.array([5 * 256 + 2, 9 * 256 + 1, 3 * 256 + 4, 4 * 256 + 4, 0])
    out = filter_ids(ids, valid, min_area=MIN_INST_AREA)
    assert MIN_INST_AREA == 50
    assert set(np.unique(out).tolist()) == {0, 5 * 256 + 2, 4 * 256 + 4}
    assert np.all(out[:10] == 5 * 256 + 2)
    assert np.all(out[10:15] == 0)
    assert np.all(out[15:, :5] == 0)


@pytest.mark.parametrize("min_area", [1, 50, 61])
def test_filter_threshold_is_inclusive(min_area):
    ids = np.zeros((10, 10), np.uint32)
    ids.flat[:60] = 7
    out = filter_ids(ids, np.array([7]), min_area=min_area)
    assert (out == 7).sum() == (60 if min_area <= 60 else 0)


def test_filter_with_no_valid_ids_is_all_void():
    ids = np.full((4, 4), 3, np.uint32)
    assert not filter_ids(ids, np.array([], dtype=np.int64)).any()


def reference_filter(ids: np.ndarray, valid_ids: np.ndarray, min_area: int) -> np.ndarray:
    """The rule written plainly: keep an id when it is a non-zero valid id covering >= min_area pixels."""
    values, counts = np.unique(ids, return_counts=True)
    kept = {int(v) for v, c in zip(values, counts) if v != 0 and v in set(valid_ids.tolist()) and c >= min_area}
    return np.where(np.isin(ids, list(kept)), ids, 0).astype(np.uint32)


@pytest.mark.parametrize("by_table", [True, False])
def test_id_filter_by_table_and_by_search_equal_the_rule(by_table, monkeypatch):
    if not by_table:
        monkeypatch.setattr(panoptic, "LOOKUP_TABLE_MAX_ID", 0)
    rng = np.random.default_rng(5)
    valid = (rng.integers(1, 300, 80) * 1000 + rng.integers(0, 100, 80)).astype(np.uint32)
    ids = valid[rng.integers(0, len(valid), (60, 90))]
    ids[:5] = 0
    ids[10:12] = rng.integers(0, 2**24, (2, 90))  # corrupted border ids, many beyond the largest valid id
    ids[20, :7] = valid.max() + 1
    id_filter = IdFilter(np.concatenate([valid, [0]]))
    assert (id_filter.table is not None) == by_table
    for min_area in (1, 50, 70):
        np.testing.assert_array_equal(id_filter(ids, min_area), reference_filter(ids, valid, min_area))
