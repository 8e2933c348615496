"""Pillow's `Image.resize` (LANCZOS and BICUBIC, 8-bit channels) in torch, bit for bit, for any torch device.

Pillow resamples separably: a horizontal pass over the rows that the vertical pass will read, rounded to 8
bits, then a vertical pass. Each output pixel is a weighted sum over a window of input pixels whose weights
are the filter's values normalised to sum to one and then rounded to fixed point with PRECISION_BITS
fraction bits; the sum starts at half a unit, is shifted right by PRECISION_BITS and clipped to 0..255. The
weights below are computed with the same double-precision formulas in the same order (Python's `math` is the
C library's), so the integers are Pillow's and so are the pixels (tests compare them over sizes and filters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

PRECISION_BITS = 32 - 8 - 2
"""Pillow's fixed-point fraction bits for 8-bit images."""


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x = x * math.pi
    return math.sin(x) / x


def lanczos(x: float) -> float:
    """Pillow's three-lobed Lanczos window."""
    if -3.0 <= x < 3.0:
        return _sinc(x) * _sinc(x / 3)
    return 0.0


def bicubic(x: float) -> float:
    """Pillow's cubic convolution with a = -0.5."""
    a = -0.5
    if x < 0.0:
        x = -x
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


FILTERS = {"lanczos": (lanczos, 3.0), "bicubic": (bicubic, 2.0)}
"""Name -> (filter, support at scale 1)."""


@dataclass(frozen=True)
class AxisWeights:
    """One axis of a resize: output index i reads inputs start[i] + t for t < taps[i] with fixed-point
    weights[i, t] (zero for t >= taps[i]; such positions are clamped to a valid input index)."""

    start: np.ndarray  # (out,) int64
    taps: np.ndarray  # (out,) int64
    weights: np.ndarray  # (out, ksize) int32

    def indices(self, in_size: int) -> np.ndarray:
        """(out, ksize) input index of each weight, always within the input."""
        ksize = self.weights.shape[1]
        return np.minimum(self.start[:, None] + np.arange(ksize)[None, :], in_size - 1)


@lru_cache(maxsize=16)
def axis_weights(in_size: int, out_size: int, filter_name: str) -> AxisWeights:
    """Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for a whole-image box."""
    filt, base_support = FILTERS[filter_name]
    scale = filterscale = in_size / out_size
    if filterscale < 1.0:
        filterscale = 1.0
    support = base_support * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    start = np.zeros(out_size, np.int64)
    taps = np.zeros(out_size, np.int64)
    weights = np.zeros((out_size, ksize), np.int32)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        ss = 1.0 / filterscale
        xmin = max(int(center - support + 0.5), 0)
        count = min(int(center + support + 0.5), in_size) - xmin
        values = [filt((x + xmin - center + 0.5) * ss) for x in range(count)]
        total = 0.0
        for w in values:
            total += w
        for x, w in enumerate(values):
            w = w / total if total != 0.0 else w
            weights[xx, x] = (
                int(-0.5 + w * (1 << PRECISION_BITS)) if w < 0 else int(0.5 + w * (1 << PRECISION_BITS))
            )
        start[xx], taps[xx] = xmin, count
    return AxisWeights(start, taps, weights)


class TorchResize:
    """A Pillow resize of (H, W, 3) uint8 frames of one size to another, on one torch device."""

    def __init__(self, in_size: tuple[int, int], out_size: tuple[int, int], filter_name: str, device):
        import torch

        (in_w, in_h), (out_w, out_h) = in_size, out_size
        self.out_size = out_size
        self.horizontal = out_w != in_w
        self.vertical = out_h != in_h
        rows = axis_weights(in_h, out_h, filter_name)
        cols = axis_weights(in_w, out_w, filter_name)
        # Pillow's horizontal pass only covers the rows that the vertical pass reads.
        self.first_row = int(rows.start[0])
        self.last_row = int(rows.start[-1] + rows.taps[-1])
        row_start = rows.start - (self.first_row if self.horizontal else 0)
        shifted_rows = AxisWeights(row_start, rows.taps, rows.weights)
        span = self.last_row - self.first_row if self.horizontal else in_h

        def to_device(weights: AxisWeights, size: int):
            index = torch.as_tensor(weights.indices(size), device=device)
            return index, torch.as_tensor(weights.weights, device=device)

        self.col_index, self.col_weights = to_device(cols, in_w)
        self.row_index, self.row_weights = to_device(shifted_rows, span)

    def __call__(self, image):
        """(H, W, 3) uint8 tensor -> (H', W', 3) uint8 tensor."""
        import torch

        pixels = image
        if self.horizontal:
            rows = pixels[self.first_row : self.last_row].to(torch.int32)
            pixels = _weighted_pass(rows, self.col_index, self.col_weights, dim=1)
        if self.vertical:
            pixels = _weighted_pass(pixels.to(torch.int32), self.row_index, self.row_weights, dim=0)
        return pixels


def _weighted_pass(pixels, index, weights, dim: int):
    """One Pillow pass along `dim` of int32 pixels: sum of weight x input per tap, from half a unit, shifted
    and clipped to uint8. Tap by tap, so that the intermediate stays the size of the output."""
    import torch

    shape = [1, 1, 1]
    shape[dim] = -1
    total = None
    for tap in range(index.shape[1]):
        term = pixels.index_select(dim, index[:, tap]) * weights[:, tap].reshape(shape)
        total = term if total is None else total.add_(term)
    total.add_(1 << (PRECISION_BITS - 1))
    return torch.bitwise_right_shift(total, PRECISION_BITS).clamp_(0, 255).to(torch.uint8)
