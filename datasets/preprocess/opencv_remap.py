"""OpenCV's `cv2.remap(..., INTER_LINEAR, borderMode=BORDER_REFLECT_101)` of uint8 images with float maps, in
torch, bit for bit, for any torch device.

OpenCV has computed this in two ways, and which one a machine has depends on its OpenCV build:
- "fixed_point" (OpenCV 4.10 and earlier): the map is rounded to 1/32 pixel (cvRound of map * 32); the
  four neighbours get integer weights (32 - fy)(32 - fx) * 32 ... that sum to 2^15, and the result is
  (sum + 2^14) >> 15.
- "float_fma" (OpenCV 5): the fractions are map - floor(map) in float32; two horizontal and one vertical
  float32 fused multiply-adds (lerp = a * (b - c) + c, rounded once), then rounded half to even.
  A float32 product of these operands is exact in float64 and the sum with an 8-bit value too, so a float64
  multiply-add rounded to float32 is the fused one for the horizontal lerps; the vertical one can differ from
  a true fused result only where it lands on exactly .5 after a second rounding.
Neighbours outside the image reflect without repeating the edge pixel (BORDER_REFLECT_101). frame_device.py
checks on each machine which variant reproduces its OpenCV before using either.
"""

from __future__ import annotations

import numpy as np

VARIANTS = ("fixed_point", "float_fma")
_TAB_BITS = 5  # OpenCV's INTER_BITS: 32 sub-pixel positions
_COEF_BITS = 15  # INTER_REMAP_COEF_BITS


def reflect_101(index: np.ndarray, size: int) -> np.ndarray:
    """OpenCV's BORDER_REFLECT_101 for any integer index (repeated reflections included)."""
    if size == 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    index = np.abs(index) % period
    return np.where(index >= size, period - index, index)


class TorchRemap:
    """The remap of one pair of maps (one camera), prepared once, applied to (H, W, 3) uint8 frames on one
    torch device. The tables (neighbour indices and weights) are computed in numpy and moved once."""

    def __init__(
        self, map_x: np.ndarray, map_y: np.ndarray, source_size: tuple[int, int], variant: str, device
    ):
        import torch

        if variant not in VARIANTS:
            raise ValueError(f"remap variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        self.out_shape = map_x.shape
        width, height = source_size
        if variant == "fixed_point":
            x0, y0, weights = _fixed_point_tables(map_x, map_y)
        else:
            x0, y0, weights = _float_tables(map_x, map_y)
        xs = (reflect_101(x0, width), reflect_101(x0 + 1, width))
        ys = (reflect_101(y0, height), reflect_101(y0 + 1, height))
        # Flat indices of the neighbours (top-left, top-right, bottom-left, bottom-right) in (H*W, 3) pixels.
        flat = np.stack(
            [ys[0] * width + xs[0], ys[0] * width + xs[1], ys[1] * width + xs[0], ys[1] * width + xs[1]]
        )
        self.index = torch.as_tensor(flat.reshape(4, -1), device=device)
        self.weights = [torch.as_tensor(w.reshape(-1, 1), device=device) for w in weights]
        self.source_shape = (height, width, 3)
        self._buffer = None

    @property
    def buffer(self):
        """The device buffer that `upload` fills, for a captured CUDA graph to read (made on first use)."""
        if self._buffer is None:
            import torch

            self._buffer = torch.empty(self.source_shape, dtype=torch.uint8, device=self.index.device)
        return self._buffer

    def upload(self, frame):
        """Copy a (H, W, 3) uint8 host frame of this camera into `buffer`; returns the buffer."""
        if tuple(frame.shape) != self.source_shape:
            raise ValueError(f"frame of shape {tuple(frame.shape)} for a camera of {self.source_shape}")
        return self.buffer.copy_(frame)

    def __call__(self, image):
        """(H, W, 3) uint8 tensor -> (H', W', 3) uint8 tensor (H', W' = the maps' shape)."""
        import torch

        pixels = image.reshape(-1, image.shape[-1])
        p00, p01, p10, p11 = (pixels.index_select(0, self.index[k]) for k in range(4))
        if self.variant == "fixed_point":
            w00, w01, w10, w11 = self.weights
            total = p00.to(torch.int32) * w00
            total += p01.to(torch.int32) * w01
            total += p10.to(torch.int32) * w10
            total += p11.to(torch.int32) * w11
            total += 1 << (_COEF_BITS - 1)
            out = torch.bitwise_right_shift(total, _COEF_BITS)
        else:
            alpha, beta = self.weights
            top = _lerp(alpha, p00.float(), p01.float())
            bottom = _lerp(alpha, p10.float(), p11.float())
            out = torch.round(_lerp(beta, top, bottom))
        return out.clamp_(0, 255).to(torch.uint8).reshape(*self.out_shape, image.shape[-1])


def _lerp(t, start, end):
    """float32 start + t * (end - start) as a fused multiply-add: exact product and sum in float64, one
    rounding to float32."""
    import torch

    difference = (end - start).double()
    return torch.addcmul(start.double(), t.double(), difference).float()


def _fixed_point_tables(map_x: np.ndarray, map_y: np.ndarray):
    sx = np.rint(map_x.astype(np.float32) * np.float32(1 << _TAB_BITS)).astype(np.int64)
    sy = np.rint(map_y.astype(np.float32) * np.float32(1 << _TAB_BITS)).astype(np.int64)
    fx, fy = sx & ((1 << _TAB_BITS) - 1), sy & ((1 << _TAB_BITS) - 1)
    x0 = np.clip(sx >> _TAB_BITS, -32768, 32767)  # OpenCV keeps the integer part as a short
    y0 = np.clip(sy >> _TAB_BITS, -32768, 32767)
    one = 1 << _TAB_BITS
    scale = 1 << (_COEF_BITS - 2 * _TAB_BITS)  # the product of two fractions of 32 -> a fraction of 2^15
    weights = [
        ((one - fy) * (one - fx) * scale).astype(np.int32),
        ((one - fy) * fx * scale).astype(np.int32),
        (fy * (one - fx) * scale).astype(np.int32),
        (fy * fx * scale).astype(np.int32),
    ]
    return x0, y0, weights


def _float_tables(map_x: np.ndarray, map_y: np.ndarray):
    map_x, map_y = map_x.astype(np.float32), map_y.astype(np.float32)
    fx, fy = np.floor(map_x), np.floor(map_y)
    alpha, beta = (map_x - fx).astype(np.float32), (map_y - fy).astype(np.float32)
    return fx.astype(np.int64), fy.astype(np.int64), [alpha, beta]
