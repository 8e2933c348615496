"""Parameter groups and AdamW, as the official trainer builds them."""

from __future__ import annotations

import torch
from torch import nn

from panst3r_core.engine.config import TrainingConfig


def is_decay_exempt(name: str, parameter: torch.Tensor) -> bool:
    """Official rule: no weight decay for names ending in `.bias` or containing `norm`.

    (GroupNorm weights that are not named `norm`, e.g. inside a Sequential, therefore do get decay.)
    """
    return name.endswith(".bias") or "norm" in name


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups over the trainable parameters: with and without weight decay."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if is_decay_exempt(name, parameter) else decay).append(parameter)
    groups = [
        {"params": no_decay, "weight_decay": 0.0},
        {"params": decay, "weight_decay": weight_decay},
    ]
    return [group for group in groups if group["params"]]


def effective_batch_size(config: TrainingConfig, world_size: int) -> int:
    return config.batch_size * config.accum_iter * world_size


def base_learning_rate(config: TrainingConfig, world_size: int) -> float:
    """`lr` when set, else `blr * effective batch / 256`."""
    if config.lr is not None:
        return config.lr
    return config.blr * effective_batch_size(config, world_size) / 256


def build_optimizer(model: nn.Module, config: TrainingConfig, lr: float) -> torch.optim.AdamW:
    groups = parameter_groups(model, config.weight_decay)
    if not groups:
        raise ValueError(
            "model has no trainable parameter; check the training.finetune_* switches and the model variant"
        )
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(config.betas))
