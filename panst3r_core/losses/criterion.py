"""The PanSt3R training loss: per-layer Hungarian matching, focal class loss, per-view BCE and dice.

Loss names follow the official code: `loss_ce`, `loss_mask`, `loss_dice` for the final prediction,
`loss_ce_<i>` ... for auxiliary output i, and `panoptic_loss` for the weighted total.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from panst3r_core.losses.distributed import average_num_masks
from panst3r_core.losses.focal import sigmoid_focal_loss
from panst3r_core.losses.host_to_device import host_to_device
from panst3r_core.losses.mask_losses import dice_loss, sigmoid_bce_loss
from panst3r_core.losses.matcher import HungarianMatcher, Match, PaddedTargets, padded_targets
from panst3r_core.losses.point_sampling import random_points, sample_binary_masks, sample_points
from panst3r_core.losses.targets import MultiViewTargets

TOTAL_LOSS_NAME = "panoptic_loss"


@dataclass
class CriterionConfig:
    """Weights and sampling of the panoptic loss (official `PanopticLoss` defaults, base.yaml values)."""

    label_mode: str = "sigmoid"
    """Classifier mode; only the official training setting `sigmoid` is implemented."""
    class_weight: float = 1.0
    """Weight of the class cost in matching and of `loss_ce` in the total."""
    mask_weight: float = 20.0
    """Weight of the sigmoid-BCE cost in matching and of `loss_mask` in the total."""
    dice_weight: float = 1.0
    """Weight of the dice cost in matching and of `loss_dice` in the total."""
    num_points: int = 12288
    """Random points per view (matching) and per object-view row (losses)."""
    deep_supervision: bool = True
    """Also supervise every auxiliary decoder output, each with its own matching."""
    focal_alpha: float = 0.25
    """Focal loss balance of positives."""
    focal_gamma: float = 2.0
    """Focal loss focusing exponent."""

    def __post_init__(self) -> None:
        if self.label_mode != "sigmoid":
            raise ValueError(
                f"criterion.label_mode: {self.label_mode!r} is not supported; use 'sigmoid' (the official "
                "training setting)"
            )
        if self.num_points < 1:
            raise ValueError(f"criterion.num_points: must be >= 1, got {self.num_points}")


class PanopticCriterion(nn.Module):
    """Multi-view panoptic loss with deep supervision."""

    def __init__(self, config: CriterionConfig | None = None) -> None:
        super().__init__()
        self.config = config or CriterionConfig()
        self.matcher = HungarianMatcher(
            class_weight=self.config.class_weight,
            mask_weight=self.config.mask_weight,
            dice_weight=self.config.dice_weight,
            num_points=self.config.num_points,
        )
        self.weights = {
            "loss_ce": self.config.class_weight,
            "loss_mask": self.config.mask_weight,
            "loss_dice": self.config.dice_weight,
        }

    def forward(
        self, outputs: Mapping[str, Any], targets: Sequence[MultiViewTargets]
    ) -> dict[str, torch.Tensor]:
        """Every loss term (unweighted) plus `panoptic_loss`, the weighted sum.

        outputs: `pred_logits` (B, Q, C), `pred_masks` (B, V, Q, h, w) mask logits (h, w = H/2, W/2 in the
        model, any size works), optional `aux_outputs`: list of dicts with the same two keys.
        targets: one `MultiViewTargets` per sample with masks (M, V, H, W).
        """
        pred_masks = outputs["pred_masks"]
        device = pred_masks.device
        num_masks = average_num_masks(sum(t.num_objects for t in targets), device=device)
        targets = [t.to(device) for t in targets]
        batch_targets = _BatchTargets.of(targets)
        layers = [("", outputs)]
        if self.config.deep_supervision:
            layers += [(f"_{i}", aux) for i, aux in enumerate(outputs.get("aux_outputs") or [])]
        losses: dict[str, torch.Tensor] = {}
        total = pred_masks.new_zeros((), dtype=torch.float32)
        # Losses in fp32 whatever the forward's autocast dtype.
        with torch.autocast(device_type=device.type, enabled=False):
            for suffix, layer_outputs in layers:
                for name, value in self._layer_losses(
                    layer_outputs, targets, batch_targets, num_masks
                ).items():
                    losses[f"{name}{suffix}"] = value
                    total = total + self.weights[name] * value
        losses[TOTAL_LOSS_NAME] = total
        return losses

    def _layer_losses(
        self,
        outputs: Mapping[str, Any],
        targets: Sequence[MultiViewTargets],
        batch_targets: _BatchTargets,
        num_masks: float,
    ) -> dict[str, torch.Tensor]:
        """Unweighted `loss_ce`, `loss_mask`, `loss_dice` of one decoder layer, with its own matching."""
        pred_logits = outputs["pred_logits"].float()
        pred_masks = outputs["pred_masks"].float()
        if pred_masks.shape[0] != len(targets):
            raise ValueError(
                f"pred_masks has batch {pred_masks.shape[0]} but {len(targets)} targets were given"
            )
        matches = self.matcher.match_padded(pred_logits, pred_masks, batch_targets.padded)
        pairs = batch_targets.matched_pairs(matches, pred_masks.device)
        return {
            "loss_ce": self._class_loss(pred_logits, batch_targets, pairs, num_masks),
            **self._mask_losses(pred_masks, batch_targets, pairs, num_masks),
        }

    def _class_loss(
        self,
        pred_logits: torch.Tensor,
        batch_targets: _BatchTargets,
        pairs: _MatchedPairs | None,
        num_masks: float,
    ) -> torch.Tensor:
        """Focal loss summed over queries and classes / num_masks; unmatched queries target all-zero.

        Classes outside a sample's dataset are multiplied by 0 so that datasets with different label sets
        can share one vocabulary without penalising each other's classes.
        """
        one_hot = torch.zeros_like(pred_logits)
        if pairs is not None:
            one_hot[pairs.sample, pairs.query, batch_targets.padded.labels[pairs.sample, pairs.target]] = 1.0
        focal = sigmoid_focal_loss(pred_logits, one_hot, self.config.focal_alpha, self.config.focal_gamma)
        output_masks = batch_targets.output_masks.to(pred_logits.dtype)
        return (focal * output_masks.unsqueeze(1)).sum() / num_masks

    def _mask_losses(
        self,
        pred_masks: torch.Tensor,
        batch_targets: _BatchTargets,
        pairs: _MatchedPairs | None,
        num_masks: float,
    ) -> dict[str, torch.Tensor]:
        """BCE and dice over (matched object, view) rows, / num_masks / V.

        Each row gets its own P uniform points (the official importance sampling with oversample and
        importance ratios of 1 keeps every random point, so it reduces to this).
        """
        num_views = pred_masks.shape[1]
        if pairs is None:
            # Keep the graph connected (DDP expects every parameter to receive a gradient).
            zero = pred_masks.sum() * 0.0
            return {"loss_mask": zero, "loss_dice": zero.clone()}
        # Rows ordered (matched pair, view), samples one after another: (K*V, 1, h, w) and (K*V, 1, H, W).
        pred_rows_t = pred_masks[pairs.sample, :, pairs.query].flatten(0, 1).unsqueeze(1)
        target_rows_t = batch_targets.padded.masks[pairs.sample, :, pairs.target].flatten(0, 1).unsqueeze(1)
        points = random_points(pred_rows_t.shape[0], self.config.num_points, device=pred_masks.device)
        point_logits = sample_points(pred_rows_t, points).squeeze(1)  # (R, P)
        with torch.no_grad():
            point_labels = sample_binary_masks(target_rows_t, points).squeeze(1)  # (R, P)
        normaliser = num_masks * num_views
        return {
            "loss_mask": sigmoid_bce_loss(point_logits, point_labels, normaliser),
            "loss_dice": dice_loss(point_logits, point_labels, normaliser),
        }


@dataclass
class _MatchedPairs:
    """Every matched (sample, query, target) of a batch, on the device; `target` is the object's index within
    its sample (its slot in the padded targets)."""

    sample: torch.Tensor
    query: torch.Tensor
    target: torch.Tensor


@dataclass
class _BatchTargets:
    """The batch's targets laid out once (not per decoder layer) in the matcher's padded layout: every layer
    matches on it and gathers its matched rows from it with one indexing operation instead of one per sample."""

    output_masks: torch.Tensor  # (B, C)
    padded: PaddedTargets  # labels (B, M), masks (B, V, M, H, W)

    @classmethod
    def of(cls, targets: Sequence[MultiViewTargets]) -> _BatchTargets:
        return cls(
            output_masks=torch.stack([t.output_mask for t in targets]),
            padded=padded_targets(targets),
        )

    def matched_pairs(self, matches: Sequence[Match], device: torch.device) -> _MatchedPairs | None:
        """The matches (host index tensors) as device indices, sent in one copy; None when nothing matched."""
        parts = [
            torch.stack([torch.full_like(m.query_indices, b), m.query_indices, m.target_indices])
            for b, m in enumerate(matches)
            if m.query_indices.numel()
        ]
        if not parts:
            return None
        indices = host_to_device(torch.cat(parts, dim=1), device)
        return _MatchedPairs(indices[0], indices[1], indices[2])
