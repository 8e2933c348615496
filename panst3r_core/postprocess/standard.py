"""`standard_v1` / `standard_v2`: Mask2Former-style merging with areas measured over all views jointly.

One routine, two parameter sets. Each iteration assigns every pixel to the candidate with the highest
score * mask, accepts a candidate when enough of its own mask survives that competition, and restricts the
candidates to the accepted ones for the next iteration. Because areas are summed over every view, a
query keeps one segment id in all views.

Vectorised: one argmax over the candidates per batch of equal-shape views and iteration, region sizes by a
scatter-add over the owner maps (no host synchronisation); views are streamed in small batches so 100 views of
384x512 with 200 queries never need the full (Q, V, H, W) tensor in memory. Runs on the device of the mask
logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from panst3r_core.postprocess.common import (
    class_probabilities,
    normalise_logits,
    normalise_masks,
    normalise_shapes,
    upsample_view_masks,
)
from panst3r_core.postprocess.result import PanopticResult, SegmentInfo

# A query's "original" area counts its pixels with mask >= 0.5 (independent of mask_threshold).
ORIGINAL_AREA_THRESHOLD = 0.5


@dataclass(frozen=True)
class StandardOptions:
    """Options of the standard merging (defaults = `standard_v2`, the official default)."""

    cls_threshold: float = 0.1
    """A query is a candidate only if its best class probability is strictly above this."""
    mask_threshold: float = 0.25
    """A pixel owned by a candidate joins its segment only if that candidate's mask is >= this."""
    overlap_threshold: float = 0.5
    """Accept a candidate if (its region) / (its pixels with mask >= 0.5) is >= this."""
    niters: int = 2
    """Rounds of assignment; each round drops the rejected candidates before the next argmax."""
    void_confidence: float = 0.1
    """Value of the `conf` maps on void pixels."""
    label_mode: str = "sigmoid"
    """How class logits become probabilities (only `sigmoid`, the mode of the released models)."""


STANDARD_V1 = StandardOptions(mask_threshold=0.5, overlap_threshold=0.8, niters=1)
STANDARD_V2 = StandardOptions()


# Views are processed in batches of equal shapes of at most this many upsampled mask values (256 MiB of
# float32): a few views of 200 candidates at 384x512 per batch, instead of ~17 small kernels per view.
MAX_BATCH_ELEMENTS = 2**26


def _count_per_query(flags: torch.Tensor) -> torch.Tensor:
    """(n, K, H, W) bool -> (K,) int64 counts; summing the bytes is several times faster than a bool sum."""
    return flags.view(torch.uint8).sum(dim=(0, 2, 3), dtype=torch.int32).long()  # per batch < 2**31


def view_batches(
    views: list[torch.Tensor], shapes: list[tuple[int, int]], num_candidates: int
) -> list[list[int]]:
    """Indices of views with equal mask and true shapes, in batches bounded by MAX_BATCH_ELEMENTS."""
    groups: dict[tuple, list[int]] = {}
    for i, (view, shape) in enumerate(zip(views, shapes)):
        groups.setdefault((tuple(view.shape), tuple(shape)), []).append(i)
    batches = []
    for indices in groups.values():
        height, width = shapes[indices[0]]
        size = max(1, MAX_BATCH_ELEMENTS // max(1, num_candidates * height * width))
        batches += [indices[start : start + size] for start in range(0, len(indices), size)]
    return batches


@dataclass
class _Assignment:
    """One round's owner maps (indices into the candidate list) and owner mask values, per batch of views."""

    batches: list[list[int]]
    owners: list[torch.Tensor]  # per batch (n, H, W) int32
    values: list[torch.Tensor]  # per batch (n, H, W) float32
    region_counts: torch.Tensor
    original_areas: torch.Tensor | None


def _assign(
    views: list[torch.Tensor],
    shapes: list[tuple[int, int]],
    candidates: torch.Tensor,
    candidate_scores: torch.Tensor,
    mask_threshold: float,
    count_original_areas: bool,
) -> _Assignment:
    batches = view_batches(views, shapes, len(candidates))
    owners, values = [], []
    region_counts = torch.zeros(len(candidates), dtype=torch.int64, device=candidates.device)
    original_areas = torch.zeros_like(region_counts) if count_original_areas else None
    for batch in batches:
        logits = torch.stack([views[i] for i in batch]).index_select(1, candidates)
        masks = upsample_view_masks(logits, shapes[batch[0]])  # (n, K, H, W)
        if original_areas is not None:
            original_areas += _count_per_query(masks >= ORIGINAL_AREA_THRESHOLD)
        # max(dim).indices is the first maximum on ties, like the official argmax, and faster on CPU
        owner = (candidate_scores[None, :, None, None] * masks).max(dim=1).indices
        value = masks.gather(1, owner[:, None])[:, 0]
        # a scatter-add, unlike bincount or boolean indexing, needs no host synchronisation on a GPU
        region_counts.scatter_add_(0, owner.flatten(), (value >= mask_threshold).flatten().long())
        owners.append(owner.to(torch.int32))
        values.append(value)
    return _Assignment(batches, owners, values, region_counts, original_areas)


def _empty_result(
    shapes: list[tuple[int, int]], void_confidence: float, device: torch.device
) -> PanopticResult:
    return PanopticResult(
        pan=[torch.zeros(shape, dtype=torch.int32, device=device) for shape in shapes],
        conf=[torch.full(shape, void_confidence, dtype=torch.float32, device=device) for shape in shapes],
        segments_info=[],
    )


@torch.no_grad()
def standard_postprocess(
    pred_logits: torch.Tensor,
    pred_masks: Sequence[torch.Tensor] | torch.Tensor,
    true_shapes: Sequence[Sequence[int]] | torch.Tensor,
    options: StandardOptions = STANDARD_V2,
) -> PanopticResult:
    """Merge query masks into multi-view panoptic maps.

    pred_logits: (Q, C) or (1, Q, C) class logits of the scene.
    pred_masks: per view (Q, h, w) or (1, Q, h, w) mask logits (any resolution), or a (V, Q, h, w) tensor.
    true_shapes: (V, 2) true (H, W) of each view; masks are upsampled to it.
    """
    if options.niters < 1:
        raise ValueError(f"StandardOptions.niters must be >= 1, got {options.niters}")
    logits = normalise_logits(pred_logits)
    views = normalise_masks(pred_masks)
    shapes = normalise_shapes(true_shapes, len(views))
    device = views[0].device
    if logits.shape[0] != views[0].shape[0]:
        raise ValueError(f"pred_logits has {logits.shape[0]} queries but pred_masks has {views[0].shape[0]}")
    scores, labels = class_probabilities(logits.to(device), options.label_mode).max(dim=-1)
    candidates = torch.nonzero(scores > options.cls_threshold).flatten()
    if candidates.numel() == 0:
        return _empty_result(shapes, options.void_confidence, device)

    # the original areas do not depend on the round: count them during the first one
    original_area_of_query = torch.zeros(len(scores), dtype=torch.int64, device=device)
    for iteration in range(options.niters):
        assignment = _assign(
            views, shapes, candidates, scores[candidates], options.mask_threshold, iteration == 0
        )
        if assignment.original_areas is not None:
            original_area_of_query[candidates] = assignment.original_areas
        regions = assignment.region_counts
        original = original_area_of_query[candidates]
        ratio = regions.double() / original.clamp(min=1).double()
        accepted = (regions > 0) & (original > 0) & (ratio >= options.overlap_threshold)
        if iteration == options.niters - 1:
            return _build_result(assignment, candidates, accepted, scores, labels, options)
        candidates = candidates[accepted]
        if candidates.numel() == 0:
            return _empty_result(shapes, options.void_confidence, device)
    raise AssertionError("unreachable: the last iteration returns")


def accepted_ids(accepted: torch.Tensor) -> torch.Tensor:
    """Segment id of each candidate: 1, 2, ... for the accepted ones in candidate (= query) order, else 0."""
    id_of_candidate = torch.zeros(len(accepted), dtype=torch.int32, device=accepted.device)
    id_of_candidate[accepted] = torch.arange(
        1, int(accepted.sum()) + 1, dtype=torch.int32, device=accepted.device
    )
    return id_of_candidate


def _maps(
    assignment: _Assignment, id_of_candidate: torch.Tensor, options: StandardOptions
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per-view (pan, conf) maps of the assigned views from the final round's owners."""
    num_views = sum(len(batch) for batch in assignment.batches)
    pans: list[torch.Tensor] = [None] * num_views  # type: ignore[list-item]
    confs: list[torch.Tensor] = [None] * num_views  # type: ignore[list-item]
    for batch, owner, value in zip(assignment.batches, assignment.owners, assignment.values):
        segment_id = id_of_candidate[owner.long()]
        keep = (segment_id > 0) & (value >= options.mask_threshold)
        batch_pan = torch.where(keep, segment_id, torch.zeros_like(segment_id))
        batch_conf = torch.where(keep, value, torch.full_like(value, options.void_confidence))
        for j, i in enumerate(batch):
            pans[i], confs[i] = batch_pan[j], batch_conf[j]
    return pans, confs


def _build_result(
    assignment: _Assignment,
    candidates: torch.Tensor,
    accepted: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    options: StandardOptions,
) -> PanopticResult:
    # ids 1, 2, ... in candidate (= query) order, as the official loop hands them out
    id_of_candidate = accepted_ids(accepted)
    pans, confs = _maps(assignment, id_of_candidate, options)
    segments = []
    for k in torch.nonzero(accepted).flatten().tolist():
        query = int(candidates[k])
        segments.append(
            SegmentInfo(
                id=int(id_of_candidate[k]),
                query_id=query,
                category_id=int(labels[query]),
                score=float(scores[query]),
                area=int(assignment.region_counts[k]),
            )
        )
    return PanopticResult(pan=pans, conf=confs, segments_info=segments)


def standard_v1(
    pred_logits, pred_masks, true_shapes, options: StandardOptions | None = None
) -> PanopticResult:
    """The classic Mask2Former thresholds (0.5 / 0.8, one round), multi-view areas."""
    return standard_postprocess(pred_logits, pred_masks, true_shapes, options or STANDARD_V1)


def standard_v2(
    pred_logits, pred_masks, true_shapes, options: StandardOptions | None = None
) -> PanopticResult:
    """The official default: 0.25 / 0.5, two rounds."""
    return standard_postprocess(pred_logits, pred_masks, true_shapes, options or STANDARD_V2)
