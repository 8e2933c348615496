"""The torch resize equals Pillow's `Image.resize` bit for bit (LANCZOS shrinking, BICUBIC enlarging)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from datasets.preprocess.pil_resample import FILTERS, PRECISION_BITS, TorchResize, axis_weights
from datasets.preprocess.rescale import PIL_FILTERS


def pillow(image: np.ndarray, size: tuple[int, int], name: str) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize(size, resample=PIL_FILTERS[name]))


def images(height: int, width: int, seed: int) -> list[np.ndarray]:
    """Noise (every weight matters) and a smooth picture with hard edges (clipping at 0 and 255)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.5)
    smooth[: height // 3] = 255
    smooth[height // 3 : height // 3 + 3] = 0
    return [noise, smooth]


@pytest.mark.parametrize(
    ("in_size", "out_size", "name"),
    [
        ((1752, 1168), (1035, 690), "lanczos"),  # the ScanNet++ DSLR frame to its stored size
        ((876, 584), (1035, 690), "bicubic"),  # a smaller frame enlarged
        ((333, 211), (100, 77), "lanczos"),  # odd sizes, strong reduction
        ((640, 480), (640, 360), "lanczos"),  # one axis only: no horizontal pass
        ((640, 480), (512, 480), "lanczos"),  # one axis only: no vertical pass
        ((97, 61), (181, 122), "bicubic"),
    ],
)
def test_equals_pillow(in_size, out_size, name):
    resize = TorchResize(in_size, out_size, name, "cpu")
    for image in images(in_size[1], in_size[0], seed=sum(in_size)):
        got = resize(torch.from_numpy(image)).numpy()
        assert got.dtype == np.uint8 and got.shape == (out_size[1], out_size[0], 3)
        np.testing.assert_array_equal(got, pillow(image, out_size, name))


def test_every_filter_the_rescale_uses_is_ported():
    assert set(PIL_FILTERS) == set(FILTERS)


def test_weights_are_normalised_fixed_point_windows():
    weights = axis_weights(1752, 1035, "lanczos")
    one = 1 << PRECISION_BITS
    sums = weights.weights.astype(np.int64).sum(axis=1)
    assert np.all(np.abs(sums - one) <= weights.taps)  # one rounding per tap
    assert weights.start.min() == 0 and (weights.start + weights.taps).max() == 1752
    assert np.all(weights.weights[np.arange(weights.weights.shape[1])[None, :] >= weights.taps[:, None]] == 0)
    # Windows move forward with the output pixel.
    assert np.all(np.diff(weights.start) >= 0)
