"""Sigmoid focal loss (Lin et al.) for the per-class sigmoid classification of queries."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sigmoid_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Element-wise focal loss, same shape as `logits`.

    loss = alpha_t * (1 - p_t)^gamma * BCE(logits, targets), p_t = p if target else 1 - p,
    alpha_t = alpha if target else 1 - alpha. alpha < 0 disables the balancing term.
    """
    targets = targets.to(logits.dtype)
    probs = torch.sigmoid(logits)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = probs * targets + (1 - probs) * (1 - targets)
    loss = bce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss
