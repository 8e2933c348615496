"""Learning-rate schedule: linear warm-up from 0, then half-cosine down to min_lr (croco's)."""

from __future__ import annotations

import math

import torch


def learning_rate_at(
    epoch: float, lr: float, min_lr: float, warmup_epochs: float, total_epochs: float
) -> float:
    """Learning rate at fractional `epoch` (epoch index + fraction of its iterations done)."""
    if epoch < warmup_epochs:
        return lr * epoch / warmup_epochs
    if total_epochs <= warmup_epochs:
        return lr
    progress = min((epoch - warmup_epochs) / (total_epochs - warmup_epochs), 1.0)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Apply `lr` to every parameter group, scaled by the group's optional `lr_scale`."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
