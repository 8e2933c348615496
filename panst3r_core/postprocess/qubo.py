"""`qubo`: the paper's multi-view merging as a quadratic binary selection of query masks.

Select the set of masks that covers the most (soft) area with the least mutual (soft) overlap:
    E(x) = x^T Q x + lambda * mean(x),  Q = -W,
    W_ii = sum of m_i over all pixels of all views,
    W_ij = -(1 + penalty) / 2 * sum of min(m_i, m_j)   (i != j),
both divided by V * H_max * W_max as in the official code. The minimiser is found by seeded simulated
annealing (`annealing.py`), then decoded: each pixel goes to the selected mask with the highest value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from panst3r_core.postprocess.annealing import AnnealingOptions, AnnealingResult, anneal_qubo
from panst3r_core.postprocess.common import (
    class_probabilities,
    normalise_logits,
    normalise_masks,
    normalise_shapes,
    upsample_view_masks,
)
from panst3r_core.postprocess.result import PanopticResult, SegmentInfo

# elements of the (Q, Q, pixels) pairwise-minimum block evaluated at once
_OVERLAP_BLOCK_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class QuboOptions:
    """Options of the QUBO post-processing (official defaults, plus a seed and 64 restarts instead of 20)."""

    num_restarts: int = 64
    """Annealing restarts (official `num_redo` = 20; batched here, so more cost little: see annealing.py)."""
    num_iters: int = 10000
    """Single-bit-flip proposals per restart."""
    T0: float = 0.5
    """Initial annealing temperature."""
    T_end: float = 1e-4
    """Final annealing temperature."""
    lambda_reg: float = 1e-3
    """Weight of the mean(x) term of the energy."""
    random_init: bool = True
    """Random initial states (else all zeros)."""
    seed: int = 0
    """Seed of the annealer (the official solver used the unseeded global numpy RNG)."""
    penalty: float = 1.0
    """Overlap weight: off-diagonal W_ij = -(1 + penalty) / 2 * overlap_ij."""
    cutoff: float = 0.0
    """Normalised overlaps (fraction of V * H_max * W_max) below this are set to 0."""
    min_cls_prob: float = 0.0
    """Masks of queries whose best class probability is below this are zeroed before weighting."""
    prob_threshold: float = 0.01
    """Drop a decoded segment if class_prob * mean mask confidence over its pixels is below this."""
    label_mode: str = "sigmoid"
    """How class logits become probabilities (only `sigmoid`)."""

    def annealing(self) -> AnnealingOptions:
        return AnnealingOptions(
            num_restarts=self.num_restarts,
            num_iters=self.num_iters,
            T0=self.T0,
            T_end=self.T_end,
            lambda_reg=self.lambda_reg,
            random_init=self.random_init,
            seed=self.seed,
        )


def _pairwise_min_sum(masks_flat: torch.Tensor) -> torch.Tensor:
    """(Q, P) -> (Q, Q) float64 sums over pixels of min(m_i, m_j), in blocks of pixels."""
    num_queries, num_pixels = masks_flat.shape
    block = max(1, _OVERLAP_BLOCK_ELEMENTS // max(1, num_queries * num_queries))
    total = torch.zeros(num_queries, num_queries, dtype=torch.float64, device=masks_flat.device)
    for start in range(0, num_pixels, block):
        chunk = masks_flat[:, start : start + block]
        total += torch.minimum(chunk[:, None, :], chunk[None, :, :]).sum(dim=-1, dtype=torch.float64)
    return total


@torch.no_grad()
def qubo_matrix(
    views: list[torch.Tensor],
    shapes: list[tuple[int, int]],
    class_probs: torch.Tensor,
    options: QuboOptions = QuboOptions(),
) -> torch.Tensor:
    """The (Q, Q) float64 QUBO matrix Q = -W from per-view (Q, h, w) mask logits, views streamed.

    Cost is O(Q^2 * pixels) (every pair's soft overlap), like the official code.
    """
    sums = QuboSums(views[0].shape[0], class_probs, options, views[0].device)
    sums.add(views, shapes)
    return sums.matrix(shapes, options)


class QuboSums:
    """Unnormalised soft areas and pairwise overlaps, accumulated view by view (views may come in chunks;
    the float64 sums are added in view order either way)."""

    def __init__(
        self, num_queries: int, class_probs: torch.Tensor, options: QuboOptions, device: torch.device
    ) -> None:
        self.keep = (class_probs.max(dim=-1).values >= options.min_cls_prob).float().to(device)
        self.area = torch.zeros(num_queries, dtype=torch.float64, device=device)
        self.overlap = torch.zeros(num_queries, num_queries, dtype=torch.float64, device=device)

    def add(self, views: Sequence[torch.Tensor], shapes: Sequence[tuple[int, int]]) -> None:
        for view, shape in zip(views, shapes):
            masks = upsample_view_masks(view, shape).flatten(1) * self.keep[:, None]  # (Q, H*W)
            self.area += masks.sum(dim=1, dtype=torch.float64)
            self.overlap += _pairwise_min_sum(masks)

    def matrix(self, shapes: Sequence[tuple[int, int]], options: QuboOptions) -> torch.Tensor:
        """The (Q, Q) QUBO matrix, once every view of `shapes` (all views of the scene) has been added."""
        return _normalised_matrix(self.area, self.overlap, shapes, options)


def _normalised_matrix(
    area: torch.Tensor, overlap: torch.Tensor, shapes: Sequence[tuple[int, int]], options: QuboOptions
) -> torch.Tensor:
    normaliser = len(shapes) * max(h for h, _ in shapes) * max(w for _, w in shapes)
    area, overlap = area / normaliser, overlap / normaliser
    if options.cutoff > 0:
        overlap = torch.where(overlap < options.cutoff, torch.zeros_like(overlap), overlap)
    weights = -(1.0 + options.penalty) / 2.0 * overlap
    weights.diagonal().copy_(area)
    return -weights


@torch.no_grad()
def decode_selection(
    views: list[torch.Tensor],
    shapes: list[tuple[int, int]],
    class_probs: torch.Tensor,
    solution: np.ndarray | torch.Tensor,
    prob_threshold: float = 0.01,
) -> PanopticResult:
    """Panoptic maps from a binary selection of queries (Q,): every pixel to its strongest selected mask.

    `conf` is the strongest selected mask value at every pixel (also where the segment was dropped).
    Segment `query_id` is the original query index (the official code reported the index within the
    selected subset).
    """
    device = views[0].device
    selected = torch.nonzero(torch.as_tensor(np.asarray(solution)) > 0).flatten().to(device)
    if selected.numel() == 0:
        return PanopticResult(
            pan=[torch.zeros(shape, dtype=torch.int32, device=device) for shape in shapes],
            conf=[torch.zeros(shape, dtype=torch.float32, device=device) for shape in shapes],
        )
    cls_prob, category = class_probs.to(device)[selected].max(dim=-1)
    owners, confs = [], []
    counts = torch.zeros(len(selected), dtype=torch.int64, device=device)
    conf_sums = torch.zeros(len(selected), dtype=torch.float64, device=device)
    for view, shape in zip(views, shapes):
        conf, owner = selected_owner(view, shape, selected)
        counts += torch.bincount(owner.flatten(), minlength=len(selected))
        conf_sums += torch.bincount(owner.flatten(), weights=conf.flatten().double(), minlength=len(selected))
        owners.append(owner)
        confs.append(conf)
    id_of, segments = selection_segments(selected, cls_prob, category, counts, conf_sums, prob_threshold)
    return PanopticResult(pan=[id_of[owner] for owner in owners], conf=confs, segments_info=segments)


def selected_owner(
    view: torch.Tensor, shape: tuple[int, int], selected: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Q, h, w) logits -> (H, W) strongest selected mask value and its index into `selected`."""
    return upsample_view_masks(view[selected], shape).max(dim=0)  # first max on ties


def selection_segments(
    selected: torch.Tensor,
    cls_prob: torch.Tensor,
    category: torch.Tensor,
    counts: torch.Tensor,
    conf_sums: torch.Tensor,
    prob_threshold: float,
) -> tuple[torch.Tensor, list[SegmentInfo]]:
    """Segment id of each selected query (0: dropped) and the kept segments, from whole-scene sums."""
    device = selected.device
    mean_conf = conf_sums / counts.clamp(min=1)
    kept = (counts > 0) & (cls_prob.double() * mean_conf >= prob_threshold)
    id_of = torch.zeros(len(selected), dtype=torch.int32, device=device)
    id_of[kept] = torch.arange(1, int(kept.sum()) + 1, dtype=torch.int32, device=device)
    segments = [
        SegmentInfo(
            id=int(id_of[k]),
            query_id=int(selected[k]),
            category_id=int(category[k]),
            score=float(cls_prob[k]),
            area=int(counts[k]),
            mask_conf=float(mean_conf[k]),
        )
        for k in torch.nonzero(kept).flatten().tolist()
    ]
    return id_of, segments


@dataclass
class QuboSolve:
    """Everything the QUBO post-processing computed: the matrix, the annealer's answer, the maps."""

    matrix: torch.Tensor
    annealing: AnnealingResult
    result: PanopticResult


def qubo_solve(
    pred_logits: torch.Tensor,
    pred_masks: Sequence[torch.Tensor] | torch.Tensor,
    true_shapes: Sequence[Sequence[int]] | torch.Tensor,
    options: QuboOptions = QuboOptions(),
) -> QuboSolve:
    """QUBO post-processing with its intermediate values (see `qubo_postprocess`)."""
    logits = normalise_logits(pred_logits)
    views = normalise_masks(pred_masks)
    shapes = normalise_shapes(true_shapes, len(views))
    if logits.shape[0] != views[0].shape[0]:
        raise ValueError(f"pred_logits has {logits.shape[0]} queries but pred_masks has {views[0].shape[0]}")
    probs = class_probabilities(logits, options.label_mode)
    matrix = qubo_matrix(views, shapes, probs, options)
    annealed = anneal_qubo(matrix.cpu().numpy(), options.annealing())
    result = decode_selection(views, shapes, probs, annealed.solution, options.prob_threshold)
    return QuboSolve(matrix=matrix, annealing=annealed, result=result)


def qubo_postprocess(
    pred_logits: torch.Tensor,
    pred_masks: Sequence[torch.Tensor] | torch.Tensor,
    true_shapes: Sequence[Sequence[int]] | torch.Tensor,
    options: QuboOptions | None = None,
) -> PanopticResult:
    """Select query masks by QUBO and decode them into multi-view panoptic maps.

    pred_logits: (Q, C) or (1, Q, C); pred_masks: per view (Q, h, w) logits; true_shapes: (V, 2) (H, W).
    All queries are candidates (no class-score pre-filter).
    """
    return qubo_solve(pred_logits, pred_masks, true_shapes, options or QuboOptions()).result
