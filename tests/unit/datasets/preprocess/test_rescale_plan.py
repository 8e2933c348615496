"""The dust3r rescale's output sizes for the ScanNet++ cameras, and the sizes it refuses."""

from __future__ import annotations

import pytest

from datasets.preprocess.rescale_plan import rescale_plan


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1752, 1168), (1035, 690)),
        ((876, 584), (1035, 690)),
        ((1920, 1440), (920, 690)),
        ((640, 480), (920, 690)),
    ],
)
def test_output_sizes(size, expected):
    assert rescale_plan(*size, target_resolution=920).out_size == expected


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="positive"):
        rescale_plan(0, 10)
    with pytest.raises(ValueError, match="target_resolution"):
        rescale_plan(10, 10, 0)
