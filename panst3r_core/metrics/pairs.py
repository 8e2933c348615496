"""Vectorised counting of labels and of label pairs (the confusion between two segmentations)."""

from __future__ import annotations

import numpy as np

# a direct bincount over the label range is used when the range is at most this multiple of the size
_DIRECT_RANGE_FACTOR = 4


def dense_labels(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat integer labels -> (sorted unique labels, index of each value into them, count of each label).

    Small label ranges (segment ids, class ids) use a bincount and a lookup table, O(N); others np.unique.
    """
    values = np.asarray(values).ravel()
    if values.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return values.astype(np.int64), empty, empty
    low, high = int(values.min()), int(values.max())
    if high - low <= _DIRECT_RANGE_FACTOR * values.size + 1024:
        shifted = (values - low).astype(np.intp)
        counts = np.bincount(shifted, minlength=high - low + 1)
        present = np.flatnonzero(counts)
        lookup = np.zeros(high - low + 1, dtype=np.int64)
        lookup[present] = np.arange(present.size)
        return present.astype(np.int64) + low, lookup[shifted], counts[present].astype(np.int64)
    unique, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    return unique.astype(np.int64), inverse.ravel().astype(np.int64), counts.astype(np.int64)


def pair_counts(
    first_index: np.ndarray, first_size: int, second_index: np.ndarray, second_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Co-occurrence of two dense labelings of the same pixels -> (first index, second index, count) of
    every pair that occurs."""
    codes = first_index.astype(np.int64) * second_size + second_index.astype(np.int64)
    unique, _, counts = dense_labels(codes)
    return unique // second_size, unique % second_size, counts
