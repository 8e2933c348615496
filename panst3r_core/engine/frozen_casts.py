"""Frozen Linear layers cast their weights to the autocast dtype once, not at every call.

Autocast caches its casts only for weights that require gradients, so a frozen backbone's Linear weights were
cast again at every call: hundreds of cast kernels a training step, each a launch in a host-bound step and a
copy on the GPU. The cached copy is the rounding autocast itself makes, so outputs are bit-identical. It is
rebuilt when the weight changes (version counter or storage: a resume, load_state_dict or a move between
devices) and not used while the weight trains (autocast's own cache covers that case).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CastCachingLinear(nn.Linear):
    """nn.Linear (same parameters and state_dict) that reuses its autocast cast while frozen."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device_type = x.device.type
        if self.weight.requires_grad or not torch.is_autocast_enabled(device_type):
            return super().forward(x)
        weight, bias = self._autocast_parameters(torch.get_autocast_dtype(device_type))
        return F.linear(x, weight, bias)

    def _autocast_parameters(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
        key = (dtype, *_identity(self.weight), *_identity(self.bias))
        cached = self.__dict__.get("_autocast_cast")
        if cached is None or cached[0] != key:
            with torch.no_grad():
                bias = None if self.bias is None else self.bias.to(dtype)
                cached = (key, self.weight.to(dtype), bias)
            self.__dict__["_autocast_cast"] = cached
        return cached[1], cached[2]


def _identity(tensor: torch.Tensor | None) -> tuple:
    return (None, None) if tensor is None else (tensor.data_ptr(), tensor._version)


def cache_frozen_linear_casts(model: nn.Module) -> int:
    """Make every plain nn.Linear of `model` a CastCachingLinear (in place); returns how many."""
    count = 0
    for module in model.modules():
        if type(module) is nn.Linear:
            module.__class__ = CastCachingLinear
            count += 1
    return count
