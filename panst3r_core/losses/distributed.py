"""Collective helpers that degrade to no-ops without an initialised process group."""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def average_num_masks(local_count: int | float, device: torch.device | str = "cpu") -> float:
    """Number of target objects to normalise losses by: mean over ranks, clamped to >= 1.

    Averaging (not summing) keeps each rank's loss on the same scale as a single-process run, and the
    clamp avoids dividing by zero on a batch without any object.
    """
    count = torch.tensor(float(local_count), dtype=torch.float64, device=device)
    if is_distributed():
        dist.all_reduce(count)
        count = count / dist.get_world_size()
    return max(float(count.item()), 1.0)


def all_reduce_mean(values: dict[str, float], device: torch.device | str = "cpu") -> dict[str, float]:
    """Mean of each scalar over ranks (every rank must call this with the same keys)."""
    if not is_distributed() or not values:
        return dict(values)
    keys = sorted(values)
    stacked = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(stacked)
    stacked = stacked / dist.get_world_size()
    return dict(zip(keys, stacked.tolist()))
