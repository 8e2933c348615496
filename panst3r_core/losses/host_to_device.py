"""Host tensors the training step computes, sent to the device without waiting for it."""

from __future__ import annotations

import torch


def host_to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A copy from pageable memory may wait for the kernels already queued; from pinned memory it does not,
    so the host keeps running ahead of the GPU."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
