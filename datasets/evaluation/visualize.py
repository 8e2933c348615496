"""Side-by-side pictures of a view: the image, the GT panoptic map and the predicted one.

A predicted segment takes the colour of the GT segment it overlaps most when both have the same class, so
a correct prediction looks like its ground truth and a wrong one stands out; void is black.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from datasets.evaluation.label_maps import VOID_CLASS
from datasets.segment_colors import segment_palette

_HEADER = 22  # pixel height of the caption strip above each column


_PALETTE_SIZE = 97  # prime: (class, instance) hashes spread over all colours


def _segment_index(classes: np.ndarray, instances: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense index per pixel of its (class, instance) pair (-1 = void), each segment's class and its colour
    slot (a hash of the pair, so a segment keeps its colour in every view)."""
    valid = classes > VOID_CLASS
    keys = np.stack([classes[valid], instances[valid]], axis=1)
    index = np.full(classes.shape, -1, dtype=np.int64)
    if keys.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return index, empty, empty
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    index[valid] = inverse.ravel()
    slots = (unique[:, 0] * 7919 + unique[:, 1] * 104729) % _PALETTE_SIZE
    return index, unique[:, 0], slots


def matched_colors(
    gt_class: np.ndarray, gt_instance: np.ndarray, pred_class: np.ndarray, pred_instance: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 colourings of the GT and of the prediction with matched colours."""
    gt_index, gt_classes, gt_slots = _segment_index(gt_class, gt_instance)
    pred_index, pred_classes, pred_slots = _segment_index(pred_class, pred_instance)
    palette = segment_palette(_PALETTE_SIZE)
    gt_rgb = np.zeros((*gt_class.shape, 3), dtype=np.uint8)
    pred_rgb = np.zeros_like(gt_rgb)
    gt_rgb[gt_index >= 0] = palette[gt_slots[gt_index[gt_index >= 0]]]
    pred_colors = palette[pred_slots]
    both = (gt_index >= 0) & (pred_index >= 0)
    if both.any() and len(pred_classes):
        pairs = pred_index[both] * len(gt_classes) + gt_index[both]
        counts = np.bincount(pairs, minlength=len(pred_classes) * len(gt_classes))
        overlap = counts.reshape(len(pred_classes), len(gt_classes))
        best = overlap.argmax(axis=1)
        same = (overlap.max(axis=1) > 0) & (gt_classes[best] == pred_classes)
        pred_colors[same] = palette[gt_slots[best[same]]]
    pred_rgb[pred_index >= 0] = pred_colors[pred_index[pred_index >= 0]]
    return gt_rgb, pred_rgb


def _caption(width: int, text: str) -> np.ndarray:
    strip = np.full((_HEADER, width, 3), 255, dtype=np.uint8)
    scale = 0.45 if width >= 200 else 0.35
    cv2.putText(strip, text, (4, _HEADER - 7), cv2.FONT_HERSHEY_SIMPLEX, scale, (30, 30, 30), 1, cv2.LINE_AA)
    return strip


def comparison_grid(
    images: Sequence[np.ndarray],
    gt_colors: Sequence[np.ndarray],
    pred_colors: Sequence[np.ndarray],
    titles: Sequence[str],
) -> np.ndarray:
    """Rows of [image | ground truth | prediction], one row per view, with captions; (H, W, 3) uint8.

    Views may differ in size: every column is resized (nearest for label maps) to the first view's size."""
    if not images:
        raise ValueError("comparison_grid needs at least one view")
    height, width = np.asarray(gt_colors[0]).shape[:2]
    gap = np.full((height + _HEADER, 4, 3), 255, dtype=np.uint8)
    rows = []
    for image, gt_rgb, pred_rgb, title in zip(images, gt_colors, pred_colors, titles):
        cells = [
            (cv2.resize(np.asarray(image), (width, height), interpolation=cv2.INTER_AREA), title),
            (
                cv2.resize(np.asarray(gt_rgb), (width, height), interpolation=cv2.INTER_NEAREST),
                "ground truth",
            ),
            (
                cv2.resize(np.asarray(pred_rgb), (width, height), interpolation=cv2.INTER_NEAREST),
                "prediction",
            ),
        ]
        columns = []
        for cell, caption in cells:
            columns += [np.concatenate([_caption(width, caption), cell]), gap]
        rows.append(np.concatenate(columns[:-1], axis=1))
        rows.append(np.full((4, rows[-1].shape[1], 3), 255, dtype=np.uint8))
    return np.concatenate(rows[:-1], axis=0)
