"""Which torch device a `--device` flag means: the one rule the CLI, the flows, the torchrun worker and the
benchmarks share."""

from __future__ import annotations

import torch


def resolve_device(device: str) -> str:
    """ "auto": CUDA when available, else the CPU; "cuda", "cuda:N" and "cpu" as given. ValueError naming the
    fix when CUDA is asked for on a machine without it."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    return device
