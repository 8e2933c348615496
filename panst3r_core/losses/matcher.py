"""Multi-view Hungarian matching of predicted queries to target objects, per sample.

A query predicts one object in every view at once, so costs compare a query's masks over all V views with an
object's multi-view mask: both are sampled at the same P random points per view and flattened to V*P values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from panst3r_core.losses.point_sampling import random_points, sample_binary_masks, sample_points
from panst3r_core.losses.targets import MultiViewTargets

# linear_sum_assignment refuses NaN/inf; a diverged prediction must reach the loss (which reports it), not
# crash the matcher first.
_FINITE_LIMIT = 1e8


@dataclass(frozen=True)
class Match:
    """Matched pairs of one sample: prediction `query_indices[i]` <-> target `target_indices[i]` (K,)."""

    query_indices: torch.Tensor
    target_indices: torch.Tensor


def pairwise_sigmoid_bce_cost(pred_logits: torch.Tensor, target_values: torch.Tensor) -> torch.Tensor:
    """(Q, M) mean BCE between every prediction row (Q, S) and every target row (M, S).

    BCE(x, t) = softplus(x) - x * t, so the sum over S is softplus(x).sum() - x @ t: one softplus and one
    product instead of the BCE against all-ones and all-zeros targets and two products (a third of a CPU
    training step went to the matcher's costs)."""
    num_samples = pred_logits.shape[1]
    return (F.softplus(pred_logits).sum(dim=1, keepdim=True) - pred_logits @ target_values.T) / num_samples


def pairwise_dice_cost(pred_logits: torch.Tensor, target_values: torch.Tensor) -> torch.Tensor:
    """(Q, M) dice cost 1 - (2|p.t| + 1) / (|p| + |t| + 1) between rows of (Q, S) and (M, S)."""
    probs = pred_logits.sigmoid()
    numerator = 2 * probs @ target_values.T
    denominator = probs.sum(dim=1, keepdim=True) + target_values.sum(dim=1).unsqueeze(0)
    return 1 - (numerator + 1) / (denominator + 1)


class HungarianMatcher:
    """cost = class_weight * (-softmax prob of the target class) + mask_weight * BCE + dice_weight * dice.

    The class cost uses a softmax over all classes even though the classifier is trained with sigmoids (as
    the official code does).
    """

    def __init__(
        self,
        class_weight: float = 1.0,
        mask_weight: float = 20.0,
        dice_weight: float = 1.0,
        num_points: int = 12288,
    ) -> None:
        self.class_weight = class_weight
        self.mask_weight = mask_weight
        self.dice_weight = dice_weight
        self.num_points = num_points

    @torch.no_grad()
    def cost_matrix(
        self, pred_logits: torch.Tensor, pred_masks: torch.Tensor, targets: MultiViewTargets
    ) -> torch.Tensor:
        """Cost (Q, M) for one sample.

        pred_logits: (Q, C); pred_masks: (V, Q, h, w) mask logits; targets.masks: (M, V, H, W).
        """
        num_views, num_queries = pred_masks.shape[:2]
        class_cost = -pred_logits.float().softmax(dim=-1)[:, targets.labels]  # (Q, M)
        points = random_points(num_views, self.num_points, device=pred_masks.device)  # (V, P, 2)
        pred_values = sample_points(pred_masks.float(), points)  # (V, Q, P)
        target_values = sample_binary_masks(targets.masks.transpose(0, 1), points)  # (V, M, P)
        pred_values = pred_values.transpose(0, 1).reshape(num_queries, -1)  # (Q, V*P)
        target_values = target_values.transpose(0, 1).reshape(targets.num_objects, -1)  # (M, V*P)
        cost = (
            self.mask_weight * pairwise_sigmoid_bce_cost(pred_values, target_values)
            + self.class_weight * class_cost
            + self.dice_weight * pairwise_dice_cost(pred_values, target_values)
        )
        return torch.nan_to_num(cost, nan=_FINITE_LIMIT, posinf=_FINITE_LIMIT, neginf=-_FINITE_LIMIT)

    @torch.no_grad()
    def __call__(
        self, pred_logits: torch.Tensor, pred_masks: torch.Tensor, targets: Sequence[MultiViewTargets]
    ) -> list[Match]:
        """One `Match` per sample. pred_logits: (B, Q, C); pred_masks: (B, V, Q, h, w)."""
        costs: dict[int, torch.Tensor] = {}
        for b, sample_targets in enumerate(targets):
            if sample_targets.num_objects:
                costs[b] = self.cost_matrix(pred_logits[b], pred_masks[b], sample_targets)
        # One device -> host copy for the whole batch: a copy per sample synchronises the stream each time.
        host = torch.cat([cost.flatten() for cost in costs.values()]).cpu() if costs else None
        matches, start = [], 0
        for b in range(len(targets)):
            if b not in costs:
                empty = torch.zeros(0, dtype=torch.int64)
                matches.append(Match(empty, empty.clone()))
                continue
            shape = costs[b].shape
            cost = host[start : start + shape.numel()].view(shape)
            start += shape.numel()
            rows, cols = linear_sum_assignment(cost.numpy())
            matches.append(
                Match(torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64))
            )
        return matches
