"""Parameter groups and AdamW, as the official trainer builds them."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from panst3r_core.engine.config import TrainingConfig


def is_decay_exempt(name: str, parameter: torch.Tensor) -> bool:
    """Official rule: no weight decay for names ending in `.bias` or containing `norm`.

    (GroupNorm weights that are not named `norm`, e.g. inside a Sequential, therefore do get decay.)
    """
    return name.endswith(".bias") or "norm" in name


def _key_matches(name: str, key: str) -> bool:
    # A key names a parameter by its dotted suffix (`cls_logit_scale`) or a submodule by its dotted prefix
    # (`must3r_encoder`).
    return name == key or name.endswith("." + key) or name.startswith(key + ".")


def _lr_scale_of(name: str, lr_scales: Mapping[str, float]) -> str | None:
    """The `lr_scales` key that applies to parameter `name` (the longest that matches), or None."""
    matches = [key for key in lr_scales if _key_matches(name, key)]
    return max(matches, key=len) if matches else None


def parameter_groups(
    model: nn.Module, weight_decay: float, lr_scales: Mapping[str, float] | None = None
) -> list[dict]:
    """AdamW groups over the trainable parameters: with and without weight decay, and for every `lr_scales`
    key that matches parameters, the same two groups again carrying `lr_scale` (applied by the schedule)."""
    lr_scales = dict(lr_scales or {})
    buckets: dict[tuple[str | None, bool], list[torch.Tensor]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        key = _lr_scale_of(name, lr_scales)
        buckets.setdefault((key, not is_decay_exempt(name, parameter)), []).append(parameter)
    unused = sorted(key for key in lr_scales if not any(k == key for k, _ in buckets))
    if unused:
        raise ValueError(
            f"training.lr_scales: {', '.join(unused)} match(es) no trainable parameter name; keys are name "
            "suffixes such as `cls_logit_scale` or submodule prefixes such as `must3r_encoder` (check the "
            "spelling and the training.finetune_* switches)"
        )
    groups = []
    for key in (None, *lr_scales):
        for decay in (False, True):
            params = buckets.get((key, decay))
            if not params:
                continue
            group = {"params": params, "weight_decay": weight_decay if decay else 0.0}
            if key is not None:
                group["lr_scale"] = lr_scales[key]
            groups.append(group)
    return groups


def effective_batch_size(config: TrainingConfig, world_size: int) -> int:
    return config.batch_size * config.accum_iter * world_size


def base_learning_rate(config: TrainingConfig, world_size: int) -> float:
    """`lr` when set, else `blr * effective batch / 256`."""
    if config.lr is not None:
        return config.lr
    return config.blr * effective_batch_size(config, world_size) / 256


def build_optimizer(model: nn.Module, config: TrainingConfig, lr: float) -> torch.optim.AdamW:
    groups = parameter_groups(model, config.weight_decay, config.lr_scales)
    for group in groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    if not groups:
        raise ValueError(
            "model has no trainable parameter; check the training.finetune_* switches and the model variant"
        )
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(config.betas))
