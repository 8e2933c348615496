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
    """(..., Q, M) mean BCE between every prediction row (..., Q, S) and every target row (..., M, S).

    BCE(x, t) = softplus(x) - x * t, so the sum over S is softplus(x).sum() - x @ t: one softplus and one
    product instead of the BCE against all-ones and all-zeros targets and two products (a third of a CPU
    training step went to the matcher's costs)."""
    num_samples = pred_logits.shape[-1]
    products = pred_logits @ target_values.transpose(-1, -2)
    return (F.softplus(pred_logits).sum(dim=-1, keepdim=True) - products) / num_samples


def pairwise_dice_cost(pred_logits: torch.Tensor, target_values: torch.Tensor) -> torch.Tensor:
    """(..., Q, M) dice cost 1 - (2|p.t| + 1) / (|p| + |t| + 1) between rows of (..., Q, S) and (..., M, S)."""
    probs = pred_logits.sigmoid()
    numerator = 2 * probs @ target_values.transpose(-1, -2)
    denominator = probs.sum(dim=-1, keepdim=True) + target_values.sum(dim=-1).unsqueeze(-2)
    return 1 - (numerator + 1) / (denominator + 1)


class HungarianMatcher:
    """cost = class_weight * (-softmax prob of the target class) + mask_weight * BCE + dice_weight * dice.

    The class cost uses a softmax over all classes even though the classifier is trained with sigmoids (as
    the official code does). A batch's costs are computed together (one point draw, one sampling of the
    predictions, batched products) and copied to the host once: per-sample loops launched a few hundred small
    kernels per decoder layer.
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
        return self.batch_costs(pred_logits[None], pred_masks[None], padded_targets([targets]))[0]

    @torch.no_grad()
    def batch_costs(
        self, pred_logits: torch.Tensor, pred_masks: torch.Tensor, targets: PaddedTargets
    ) -> torch.Tensor:
        """Costs (B, Q, M) of B samples; the columns past a sample's count are padding, to be cut off.

        pred_logits: (B, Q, C); pred_masks: (B, V, Q, h, w). One point draw serves the batch (on the CPU the
        same points as one draw per sample in order); each (sample, view) row samples all of its objects' masks
        at once.
        """
        num_samples, num_views, num_queries = pred_masks.shape[:3]
        labels, masks = targets.labels, targets.masks
        device = pred_masks.device
        points = random_points(num_samples * num_views, self.num_points, device=device)  # (B*V, P, 2)
        pred_values = sample_points(pred_masks.float().flatten(0, 1), points)  # (B*V, Q, P)
        pred_values = _per_sample_rows(pred_values, num_samples)  # (B, Q, V*P)
        target_values = _sample_view_major(masks.flatten(0, 1), points)  # (B*V, M, P)
        target_values = _per_sample_rows(target_values, num_samples)  # (B, M, V*P)
        probabilities = pred_logits.float().softmax(dim=-1)  # (B, Q, C)
        class_cost = -probabilities.gather(2, labels[:, None, :].expand(-1, num_queries, -1))
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
        return self.match_padded(pred_logits, pred_masks, padded_targets(targets))

    @torch.no_grad()
    def match_padded(
        self, pred_logits: torch.Tensor, pred_masks: torch.Tensor, targets: PaddedTargets
    ) -> list[Match]:
        """`__call__` for targets already laid out by `padded_targets`: the criterion lays its batch out once
        for every decoder layer."""
        present = [b for b, count in enumerate(targets.counts) if count]
        matches = [_empty_match() for _ in targets.counts]
        if not present:
            return matches
        if len(present) < len(targets.counts):
            pred_logits, pred_masks = pred_logits[present], pred_masks[present]
            targets = targets.select(present)
        # One device -> host copy for the whole batch: a copy per sample synchronises the stream each time.
        host = self.batch_costs(pred_logits, pred_masks, targets).cpu()
        for row, (b, count) in enumerate(zip(present, targets.counts)):
            rows, cols = linear_sum_assignment(host[row, :, :count].numpy())
            matches[b] = Match(
                torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)
            )
        return matches


@dataclass(frozen=True)
class PaddedTargets:
    """A batch's targets as the matcher reads them: labels (B, M) and view-major masks (B, V, M, H, W), M the
    largest object count, padded with class 0 and empty masks (never matched: the matcher cuts their columns
    off per sample); counts[b] real objects in sample b."""

    labels: torch.Tensor
    masks: torch.Tensor
    counts: list[int]

    def select(self, samples: list[int]) -> PaddedTargets:
        return PaddedTargets(self.labels[samples], self.masks[samples], [self.counts[b] for b in samples])


def padded_targets(targets: Sequence[MultiViewTargets]) -> PaddedTargets:
    """The matcher's layout of a batch's targets (`PaddedTargets`)."""
    reference = targets[0].masks
    num_views, height, width = reference.shape[1:]
    most = max(t.num_objects for t in targets)
    labels = torch.zeros((len(targets), most), dtype=torch.int64, device=reference.device)
    masks = torch.zeros(
        (len(targets), num_views, most, height, width), dtype=torch.bool, device=reference.device
    )
    for b, sample_targets in enumerate(targets):
        count = sample_targets.num_objects
        labels[b, :count] = sample_targets.labels
        masks[b, :, :count] = sample_targets.masks.transpose(0, 1)
    return PaddedTargets(labels, masks, [t.num_objects for t in targets])


def _empty_match() -> Match:
    empty = torch.zeros(0, dtype=torch.int64)
    return Match(empty, empty.clone())


def _per_sample_rows(values: torch.Tensor, num_samples: int) -> torch.Tensor:
    """(B*V, K, P) values of (sample, view) rows -> (B, K, V*P): each of the K maps over all its views."""
    rows, channels, points = values.shape
    values = values.view(num_samples, rows // num_samples, channels, points).transpose(1, 2)
    return values.reshape(num_samples, channels, -1)


# (sample, view) rows sampled at a time: bounds the float copy of the binary masks (with the channel chunks
# of `sample_binary_masks`, 16 x 16 maps: about 50 MB at 256x192) whatever the batch size.
_TARGET_ROWS_PER_CHUNK = 16


def _sample_view_major(masks: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """(R, M, H, W) bool masks of R (sample, view) rows at each row's points (R, P, 2) -> (R, M, P)."""
    parts = [
        sample_binary_masks(
            masks[start : start + _TARGET_ROWS_PER_CHUNK], points[start : start + _TARGET_ROWS_PER_CHUNK]
        )
        for start in range(0, masks.shape[0], _TARGET_ROWS_PER_CHUNK)
    ]
    return torch.cat(parts)
