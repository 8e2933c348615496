"""Segment ids <-> RGB PNG encoding (COCO panoptic) and a deterministic per-segment colour palette."""

from __future__ import annotations

import colorsys

import numpy as np

VOID_COLOR = (0, 0, 0)


def ids_to_rgb(ids: np.ndarray) -> np.ndarray:
    """(H, W) non-negative int ids -> (H, W, 3) uint8 with id = R + 256 G + 65536 B (COCO panoptic)."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= 256**3):
        raise ValueError(f"segment ids must lie in [0, {256**3 - 1}], got [{ids.min()}, {ids.max()}]")
    ids = ids.astype(np.uint32)
    return np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], axis=-1).astype(np.uint8)


def rgb_to_ids(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) int32 ids, the inverse of `ids_to_rgb`."""
    rgb = np.asarray(rgb).astype(np.int32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def segment_palette(num_colors: int, seed: int = 0) -> np.ndarray:
    """(num_colors, 3) uint8 well-separated pastel colours (golden-ratio hue steps), deterministic per seed.

    Consecutive indices get distant hues, so neighbouring segment ids are easy to tell apart.
    """
    rng = np.random.default_rng(seed)
    start = rng.random()
    golden = 0.6180339887498949
    colors = np.empty((num_colors, 3), dtype=np.uint8)
    for i in range(num_colors):
        hue = (start + golden * i) % 1.0
        saturation = 0.45 + 0.25 * ((i * 7) % 3) / 2.0
        value = 0.85 + 0.15 * ((i * 5) % 2)
        r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
        colors[i] = (round(r * 255), round(g * 255), round(b * 255))
    return colors


def colorize_ids(ids: np.ndarray, id_to_color: dict[int, tuple[int, int, int]]) -> np.ndarray:
    """(H, W) ids -> (H, W, 3) uint8 using `id_to_color`; ids absent from it (void) get VOID_COLOR."""
    lookup_ids = np.array(sorted(id_to_color), dtype=np.int64)
    out = np.zeros((*ids.shape, 3), dtype=np.uint8)
    out[...] = VOID_COLOR
    if lookup_ids.size == 0:
        return out
    colors = np.array([id_to_color[i] for i in lookup_ids], dtype=np.uint8)
    pos = np.searchsorted(lookup_ids, ids)
    pos = np.clip(pos, 0, len(lookup_ids) - 1)
    hit = lookup_ids[pos] == ids
    out[hit] = colors[pos[hit]]
    return out
