"""Mask losses on sampled points: one row per (matched object, view) pair.

Both are summed over rows and divided by a normaliser (num_masks * V in the criterion), so an object counts
the same however many views the sample has.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sigmoid_bce_loss(
    point_logits: torch.Tensor, point_labels: torch.Tensor, normaliser: float
) -> torch.Tensor:
    """Sum over rows of the mean BCE over points, / normaliser. Inputs (R, P); labels in [0, 1]."""
    bce = F.binary_cross_entropy_with_logits(point_logits, point_labels, reduction="none")
    return bce.mean(dim=1).sum() / normaliser


def dice_loss(point_logits: torch.Tensor, point_labels: torch.Tensor, normaliser: float) -> torch.Tensor:
    """Sum over rows of 1 - (2|p.t| + 1) / (|p| + |t| + 1) with p = sigmoid(logits), / normaliser.

    The +1 smoothing makes an empty target predicted empty cost ~0 instead of 0/0.
    """
    probs = point_logits.sigmoid()
    numerator = 2 * (probs * point_labels).sum(dim=1)
    denominator = probs.sum(dim=1) + point_labels.sum(dim=1)
    return (1 - (numerator + 1) / (denominator + 1)).sum() / normaliser
