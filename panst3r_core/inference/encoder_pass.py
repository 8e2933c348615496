"""The MUSt3R encoder as inference runs it on one batch of views: its precision, its attention, compiled or not.

- Precision: float32 as the official encoder, or the run's autocast (`InferenceOptions.encoder_autocast`).
- Attention of the float32 encoder: `exact` (IEEE, official) or `tf32` (`panst3r_core.model.tf32_attention`,
  CUDA only). A batch whose tokens come out non-finite under `tf32` (a value beyond float16's range) is encoded
  again with exact attention, so the option never turns a finite result into NaN.
- `compiled`: a module through `torch.compile`, built once per module and process (the encoder here, and
  DINOv2 in `engine.dino_tokens` under the same `compile` option).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable

import torch
from torch import nn

from panst3r_core.model.tf32_attention import check_encoder_attention, tf32_attention_scope

_log = logging.getLogger(__name__)
_compiled: weakref.WeakKeyDictionary[nn.Module, Callable] = weakref.WeakKeyDictionary()
_warned_range = False


def resolve_encoder_attention(name: str, device: torch.device, autocast: bool) -> str:
    """The encoder attention that runs: `tf32` only for the float32 encoder on CUDA (the CPU has no TF32;
    an autocast encoder's attention is already in the autocast precision)."""
    check_encoder_attention(name)
    return name if device.type == "cuda" and not autocast else "exact"


def encoder_tokens(
    encoder: nn.Module, images: torch.Tensor, autocast: bool = False, attention: str = "exact"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens (B, T, D) float32, positions (B, T, 2)) of images (B, 3, H, W); `attention` as resolved by
    `resolve_encoder_attention`. `encoder` is the model's encoder or `compiled(...)` of it."""
    global _warned_range
    if attention == "tf32":
        with tf32_attention_scope():
            tokens, positions = encoder(images, autocast)
        if bool(torch.isfinite(tokens).all()):
            return tokens, positions
        if not _warned_range:
            _warned_range = True
            _log.warning(
                "encoder attention tf32: a value beyond float16's range in a batch of %d views; that batch "
                "(and any other such batch) is encoded again with exact attention",
                images.shape[0],
            )
    return encoder(images, autocast)


def compiled(module: nn.Module) -> Callable:
    """`torch.compile(module)`, built once per module (dynamic shapes after a second batch size)."""
    if module not in _compiled:
        _compiled[module] = torch.compile(module)
    return _compiled[module]
