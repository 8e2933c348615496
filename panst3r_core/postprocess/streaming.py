"""Post-processing of views that arrive in chunks: the same results as the whole-scene functions.

What needs all views at once, and how it is streamed:
* `standard_v1` / `standard_v2`: the candidates (class score > threshold) are known from the scene logits
  before any view. Each round's accept decision needs the region counts and original areas summed over all
  views (integer sums: exact in any order), and the next round's owner maps depend on that decision. So the
  first round's counts are taken as the chunks arrive, later rounds and the final maps re-read the views.
  Only the candidates' mask logits are kept between passes (typically a small fraction of the queries).
* `qubo`: the matrix sums (float64, added view by view in view order as the whole-scene code does) are taken
  as the chunks arrive; the selection is known only after annealing, so every query's mask logits are kept,
  and two more passes count the selected segments (again summed in view order) and write the maps.

Kept logits (in the dtype the model produced them: bf16 under bf16 autocast) live on the host between
passes and are uploaded one chunk at a time; past a host-memory budget they go to one file per chunk in a
spill folder (`kept_logits.KeptLogits`), read back once per pass: the values are the same bits.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from panst3r_core.postprocess.annealing import anneal_qubo
from panst3r_core.postprocess.common import class_probabilities, normalise_logits
from panst3r_core.postprocess.kept_logits import KeptLogits
from panst3r_core.postprocess.qubo import QuboOptions, QuboSums, selected_owner, selection_segments
from panst3r_core.postprocess.result import SegmentInfo
from panst3r_core.postprocess.standard import StandardOptions, _assign, _maps, accepted_ids

# (view indices, pan maps (H, W) int32, conf maps (H, W) float32) of one chunk, on the working device
MapChunk = tuple[list[int], list[torch.Tensor], list[torch.Tensor]]


class StreamingPostprocessor:
    """`add(indices, masks, shapes)` for every chunk in view order, then `finish()` (segments), then
    `maps()` (per-chunk maps, in the order the chunks were added; the kept logits are released when it
    ends)."""

    def add(
        self, indices: list[int], masks: Sequence[torch.Tensor], shapes: Sequence[tuple[int, int]]
    ) -> None:
        raise NotImplementedError

    def finish(self) -> list[SegmentInfo]:
        raise NotImplementedError

    def maps(self) -> Iterator[MapChunk]:
        raise NotImplementedError


def _check_queries(num_queries: int, masks: Sequence[torch.Tensor]) -> None:
    for mask in masks:
        if mask.dim() != 3 or mask.shape[0] != num_queries:
            raise ValueError(f"mask logits of shape {tuple(mask.shape)}; expected ({num_queries}, h, w)")


class StreamingStandard(StreamingPostprocessor):
    """`standard_postprocess` over chunks of views (identical results)."""

    def __init__(
        self,
        pred_logits: torch.Tensor,
        options: StandardOptions,
        device: torch.device,
        spill_dir: str | Path | None = None,
        host_budget_bytes: int | None = None,
    ) -> None:
        if options.niters < 1:
            raise ValueError(f"StandardOptions.niters must be >= 1, got {options.niters}")
        self.options, self.device = options, device
        logits = normalise_logits(pred_logits)
        self.scores, self.labels = class_probabilities(logits.to(device), options.label_mode).max(dim=-1)
        self.candidates = torch.nonzero(self.scores > options.cls_threshold).flatten()
        count = len(self.candidates)
        self.original = torch.zeros(count, dtype=torch.int64, device=device)
        self.first_regions = torch.zeros(count, dtype=torch.int64, device=device)
        self.store = KeptLogits(spill_dir, host_budget_bytes)
        self.final: torch.Tensor | None = None  # indices into self.candidates
        self.id_of: torch.Tensor | None = None

    def _assign(self, views, shapes, local: torch.Tensor, first_round: bool):
        # the stored views hold only the candidates, so `local` indexes them directly
        scores = self.scores[self.candidates[local]]
        return _assign(views, shapes, local, scores, self.options.mask_threshold, first_round)

    def add(self, indices, masks, shapes) -> None:
        _check_queries(len(self.scores), masks)
        shapes = [tuple(s) for s in shapes]
        restricted = [m.to(self.device).index_select(0, self.candidates) for m in masks]
        if len(self.candidates):
            everyone = torch.arange(len(self.candidates), device=self.device)
            first = self._assign(restricted, shapes, everyone, True)
            self.original += first.original_areas
            self.first_regions += first.region_counts
        self.store.put(indices, shapes, restricted)

    def finish(self) -> list[SegmentInfo]:
        opts = self.options
        local = torch.arange(len(self.candidates), device=self.device)
        regions = self.first_regions
        for iteration in range(opts.niters):
            if local.numel() == 0:
                break
            if iteration > 0:
                regions = torch.zeros(len(local), dtype=torch.int64, device=self.device)
                for _, shapes, views in self.store.read(self.device):
                    regions += self._assign(views, shapes, local, False).region_counts
            original = self.original[local]
            ratio = regions.double() / original.clamp(min=1).double()
            accepted = (regions > 0) & (original > 0) & (ratio >= opts.overlap_threshold)
            if iteration < opts.niters - 1:
                local = local[accepted]
        if local.numel() == 0:
            self.final = local
            return []
        self.final, self.id_of = local, accepted_ids(accepted)
        segments = []
        for k in torch.nonzero(accepted).flatten().tolist():
            query = int(self.candidates[local[k]])
            segments.append(
                SegmentInfo(
                    id=int(self.id_of[k]),
                    query_id=query,
                    category_id=int(self.labels[query]),
                    score=float(self.scores[query]),
                    area=int(regions[k]),
                )
            )
        return segments

    def maps(self) -> Iterator[MapChunk]:
        assert self.final is not None, "finish() first"
        for indices, shapes, views in self.store.read(self.device):
            if self.id_of is None:
                pans = [torch.zeros(s, dtype=torch.int32, device=self.device) for s in shapes]
                confs = [
                    torch.full(s, self.options.void_confidence, dtype=torch.float32, device=self.device)
                    for s in shapes
                ]
            else:
                assignment = self._assign(views, shapes, self.final, False)
                pans, confs = _maps(assignment, self.id_of, self.options)
            yield indices, pans, confs
        self.store.close()


class StreamingQubo(StreamingPostprocessor):
    """`qubo_postprocess` over chunks of views (identical results for the same seed)."""

    def __init__(
        self,
        pred_logits: torch.Tensor,
        options: QuboOptions,
        device: torch.device,
        spill_dir: str | Path | None = None,
        host_budget_bytes: int | None = None,
    ) -> None:
        self.options, self.device = options, device
        logits = normalise_logits(pred_logits)
        self.probs = class_probabilities(logits, options.label_mode)
        self.sums = QuboSums(logits.shape[0], self.probs, options, device)
        self.shapes: list[tuple[int, int]] = []
        self.store = KeptLogits(spill_dir, host_budget_bytes)
        self.selected: torch.Tensor | None = None
        self.id_of: torch.Tensor | None = None

    def add(self, indices, masks, shapes) -> None:
        _check_queries(len(self.probs), masks)
        shapes = [tuple(s) for s in shapes]
        masks = [m.to(self.device) for m in masks]
        self.sums.add(masks, shapes)
        self.shapes += shapes
        self.store.put(indices, shapes, masks)

    def finish(self) -> list[SegmentInfo]:
        annealed = anneal_qubo(
            self.sums.matrix(self.shapes, self.options).cpu().numpy(), self.options.annealing()
        )
        selected = torch.nonzero(torch.as_tensor(annealed.solution) > 0).flatten().to(self.device)
        self.selected = selected
        if selected.numel() == 0:
            return []
        cls_prob, category = self.probs.to(self.device)[selected].max(dim=-1)
        counts = torch.zeros(len(selected), dtype=torch.int64, device=self.device)
        conf_sums = torch.zeros(len(selected), dtype=torch.float64, device=self.device)
        for _, shapes, views in self.store.read(self.device):
            for view, shape in zip(views, shapes):
                conf, owner = selected_owner(view, shape, selected)
                counts += torch.bincount(owner.flatten(), minlength=len(selected))
                conf_sums += torch.bincount(
                    owner.flatten(), weights=conf.flatten().double(), minlength=len(selected)
                )
        self.id_of, segments = selection_segments(
            selected, cls_prob, category, counts, conf_sums, self.options.prob_threshold
        )
        return segments

    def maps(self) -> Iterator[MapChunk]:
        assert self.selected is not None, "finish() first"
        for indices, shapes, views in self.store.read(self.device):
            if self.id_of is None:
                pans = [torch.zeros(s, dtype=torch.int32, device=self.device) for s in shapes]
                confs = [torch.zeros(s, dtype=torch.float32, device=self.device) for s in shapes]
            else:
                pans, confs = [], []
                for view, shape in zip(views, shapes):
                    conf, owner = selected_owner(view, shape, self.selected)
                    pans.append(self.id_of[owner])
                    confs.append(conf)
            yield indices, pans, confs
        self.store.close()


def streaming_postprocessor(
    name: str,
    pred_logits: torch.Tensor,
    options: Any,
    device: torch.device,
    spill_dir: str | Path | None = None,
    host_budget_bytes: int | None = None,
) -> StreamingPostprocessor:
    """The streaming form of the registered post-processor `name` with its (typed) options. Kept mask logits
    stay in host memory up to `host_budget_bytes` (default: half the memory available now), then go to
    `spill_dir` (an existing folder; default: a temporary one)."""
    if isinstance(options, StandardOptions):
        return StreamingStandard(pred_logits, options, device, spill_dir, host_budget_bytes)
    if isinstance(options, QuboOptions):
        return StreamingQubo(pred_logits, options, device, spill_dir, host_budget_bytes)
    raise ValueError(f"post-processor {name!r} has no streaming form; use standard_v1, standard_v2 or qubo")
