"""Panoptic id images: the RGB id encoding, the anonymisation-mask multiplication and the area / validity filter.

Ids are `instance_id * cls_sep + class_id`, 0 = void, stored in RGB as id = R + 256 G + 65536 B.
"""

from __future__ import annotations

import numpy as np

MAX_ENCODABLE_ID = 256**3 - 1
MIN_INST_AREA = 50


def id2rgb(ids: np.ndarray) -> np.ndarray:
    """(...,) non-negative ints < 2**24 -> (..., 3) uint8 with R = id % 256, G = id // 256 % 256, B = id // 65536."""
    ids = np.asarray(ids).astype(np.uint32)
    return np.stack([ids & 0xFF, (ids >> 8) & 0xFF, (ids >> 16) & 0xFF], axis=-1).astype(np.uint8)


def rgb2id(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 -> (...,) uint32."""
    rgb = np.asarray(rgb).astype(np.uint32)
    return rgb[..., 0] | (rgb[..., 1] << 8) | (rgb[..., 2] << 16)


def apply_anon_mask(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The official `uint8(colour * (mask / 255))` followed by rgb2id, on (H, W) ids and an (H, W) uint8 mask.

    Fully valid pixels (255) keep their id and masked pixels (0) become void; pixels in between (mask borders
    blurred by the bilinear undistortion) get each channel scaled and truncated, i.e. a corrupted id that the
    validity filter usually removes. Only those border pixels are recomputed."""
    ids = np.asarray(ids, dtype=np.uint32)
    mask = np.asarray(mask)
    if ids.shape != mask.shape:
        raise ValueError(f"ids {ids.shape} and mask {mask.shape} must have the same shape")
    out = np.where(mask == 0, np.uint32(0), ids)
    partial = (mask > 0) & (mask < 255)
    if partial.any():
        factor = mask[partial].astype(np.float64) / 255.0
        scaled = (id2rgb(ids[partial]) * factor[:, None]).astype(np.uint8)
        out[partial] = rgb2id(scaled)
    return out


LOOKUP_TABLE_MAX_ID = 2**22
"""Largest valid id for which IdFilter indexes by a dense table (16 MB of int32); beyond it, a binary search."""


class IdFilter:
    """`filter_ids` for one scene's valid ids, with the index built once for all of its frames: a dense table
    from id to slot (a gather per pixel, several times cheaper than a binary search), or the sorted ids when
    the largest is too big for a table."""

    def __init__(self, valid_ids: np.ndarray):
        valid = np.unique(np.asarray(valid_ids, dtype=np.uint32))
        self.valid = valid[valid != 0]
        self.table = None
        if self.valid.size and int(self.valid[-1]) <= LOOKUP_TABLE_MAX_ID:
            # Slot of each id; ids that are not valid, and every id past the last (clipped to it), get the
            # sentinel slot len(valid).
            self.table = np.full(int(self.valid[-1]) + 2, self.valid.size, dtype=np.int32)
            self.table[self.valid] = np.arange(self.valid.size, dtype=np.int32)

    def _slots(self, ids: np.ndarray) -> np.ndarray:
        """Slot in `valid` of each id, len(valid) for an id that is not valid."""
        if self.table is not None:
            return self.table[np.minimum(ids, np.uint32(len(self.table) - 1))]
        slot = np.minimum(np.searchsorted(self.valid, ids), self.valid.size - 1)
        return np.where(self.valid[slot] == ids, slot, self.valid.size)

    def __call__(self, ids: np.ndarray, min_area: int = MIN_INST_AREA) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.uint32)
        if self.valid.size == 0:
            return np.zeros_like(ids)
        slot = self._slots(ids)
        counts = np.bincount(slot.ravel(), minlength=self.valid.size + 1)
        counts[self.valid.size] = 0  # invalid ids never reach min_area
        return np.where(counts[slot] >= min_area, ids, np.uint32(0)).astype(np.uint32)


def filter_ids(ids: np.ndarray, valid_ids: np.ndarray, min_area: int = MIN_INST_AREA) -> np.ndarray:
    """Set to 0 every id that covers fewer than `min_area` pixels of this image or is not in `valid_ids`.

    ids: (H, W) uint32; valid_ids: (K,) the scene's vertex ids. Returns a new (H, W) uint32 array. Many
    frames of one scene: build an IdFilter once."""
    return IdFilter(valid_ids)(ids, min_area)
