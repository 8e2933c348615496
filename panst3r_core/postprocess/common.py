"""Mask preparation shared by every post-processor (the official "common preamble").

Per view: sigmoid of the mask logits, then bilinear upsampling (align_corners=False) to that view's true
(H, W). The official code then zero-pads all views to the largest shape; we keep each view at its own
shape instead (padding only adds zero-probability pixels, which never pass a threshold and add nothing to
a sum), and flatten views into one pixel axis where whole-scene sums are needed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

LABEL_MODES = ("sigmoid",)


def normalise_logits(pred_logits: torch.Tensor) -> torch.Tensor:
    """(Q, C) or (1, Q, C) class logits -> (Q, C)."""
    if pred_logits.dim() == 3:
        if pred_logits.shape[0] != 1:
            raise ValueError(
                f"pred_logits: expected one scene (1, Q, C) or (Q, C), got shape {tuple(pred_logits.shape)}"
            )
        pred_logits = pred_logits[0]
    if pred_logits.dim() != 2:
        raise ValueError(f"pred_logits: expected (Q, C), got shape {tuple(pred_logits.shape)}")
    return pred_logits


def normalise_masks(pred_masks: Sequence[torch.Tensor] | torch.Tensor) -> list[torch.Tensor]:
    """Per-view mask logits as a list of (Q, h, w); accepts (1, Q, h, w) items or a (V, Q, h, w) tensor."""
    views = list(pred_masks.unbind(0)) if isinstance(pred_masks, torch.Tensor) else list(pred_masks)
    result = []
    for index, view in enumerate(views):
        if view.dim() == 4 and view.shape[0] == 1:
            view = view[0]
        if view.dim() != 3:
            raise ValueError(
                f"pred_masks[{index}]: expected (Q, h, w) or (1, Q, h, w), got shape {tuple(view.shape)}"
            )
        result.append(view)
    if not result:
        raise ValueError("pred_masks: no views given")
    num_queries = {view.shape[0] for view in result}
    if len(num_queries) != 1:
        raise ValueError(f"pred_masks: every view must have the same number of queries, got {num_queries}")
    return result


def normalise_shapes(
    true_shapes: Sequence[Sequence[int]] | torch.Tensor, num_views: int
) -> list[tuple[int, int]]:
    """(V, 2) true (H, W) per view -> list of int pairs."""
    if isinstance(true_shapes, torch.Tensor):
        true_shapes = true_shapes.reshape(-1, 2).tolist()
    shapes = [(int(h), int(w)) for h, w in true_shapes]
    if len(shapes) != num_views:
        raise ValueError(f"true_shapes: got {len(shapes)} shapes for {num_views} views of pred_masks")
    return shapes


def class_probabilities(pred_logits: torch.Tensor, label_mode: str = "sigmoid") -> torch.Tensor:
    """(Q, C) logits -> (Q, C) independent per-class probabilities (sigmoid label mode)."""
    if label_mode not in LABEL_MODES:
        raise ValueError(f"label_mode {label_mode!r} is not supported; use one of {', '.join(LABEL_MODES)}")
    return pred_logits.float().sigmoid()


def upsample_view_masks(mask_logits: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(K, h, w) mask logits -> (K, H, W) probabilities: sigmoid first, then bilinear to the true shape.
    A batch of views (n, K, h, w) -> (n, K, H, W) gives the same values view by view.

    The order matters for bit-exact parity with the official code (it is not the same as upsampling the
    logits). Upsampling is per channel, so any subset of queries gives the same values as the full set.
    """
    probs = mask_logits.float().sigmoid()
    if tuple(probs.shape[-2:]) == tuple(shape):
        return probs
    batched = probs if probs.dim() == 4 else probs[None]
    out = F.interpolate(batched, size=shape, mode="bilinear", align_corners=False)
    return out if probs.dim() == 4 else out[0]


def flat_scene_masks(
    views: Sequence[torch.Tensor], shapes: Sequence[tuple[int, int]], queries: torch.Tensor | None = None
) -> torch.Tensor:
    """All views' upsampled masks with views concatenated on one pixel axis: (K, sum_v H_v * W_v)."""
    flat = []
    for view, shape in zip(views, shapes):
        logits = view if queries is None else view[queries]
        flat.append(upsample_view_masks(logits, shape).flatten(1))
    return torch.cat(flat, dim=1)


def split_views(flat: torch.Tensor, shapes: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
    """(sum_v H_v * W_v,) per-pixel values -> list of (H_v, W_v) maps."""
    sizes = [h * w for h, w in shapes]
    return [part.reshape(shape) for part, shape in zip(torch.split(flat, sizes), shapes)]
