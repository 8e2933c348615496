"""Deterministic batched random sampler shared by all ranks.

Each epoch's plan (which samples, and per batch one resolution index and one memory-view count) is drawn
from a generator seeded by (seed, epoch) only, identically on every rank; each rank then takes its own
batches. Nothing depends on what was iterated before, so a run can restart at any batch of any epoch.

One iteration may run through several epochs (`set_epoch(..., end_epoch=...)`): the training loop iterates
its loader once per run, so loader workers prefetch the next epoch's first batches while the current one
ends, instead of the GPU waiting for a whole batch to be built at every epoch start.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np


class SampleKey(NamedTuple):
    """What the dataset's __getitem__ receives: which sample, at which batch-wide settings, with which seed.

    `seed` is a per-sample seed for every random choice of the dataset (view selection, crop, colour jitter),
    so samples are reproducible whatever DataLoader worker builds them.
    """

    index: int
    resolution_index: int
    memory_num_views: int
    seed: int


class BatchedViewSampler:
    """Batch sampler (use as `DataLoader(batch_sampler=...)`) yielding lists of `SampleKey`."""

    def __init__(
        self,
        dataset_size: int,
        batch_size: int,
        num_resolutions: int,
        min_memory_num_views: int,
        max_memory_num_views: int,
        samples_per_epoch: int | None = None,
        max_batches_per_epoch: int | None = None,
        world_size: int = 1,
        rank: int = 0,
        seed: int = 777,
    ) -> None:
        if dataset_size < 1:
            raise ValueError("sampler: the dataset is empty; check the store's pair table")
        if not 0 <= rank < world_size:
            raise ValueError(f"sampler: rank {rank} outside world size {world_size}")
        self.dataset_size = dataset_size
        self.batch_size = batch_size
        self.num_resolutions = num_resolutions
        self.min_memory_num_views = min_memory_num_views
        self.max_memory_num_views = max_memory_num_views
        self.samples_per_epoch = samples_per_epoch or dataset_size
        self.world_size = world_size
        self.rank = rank
        self.seed = seed
        batches = self.samples_per_epoch // (batch_size * world_size)
        if max_batches_per_epoch is not None:
            batches = min(batches, max_batches_per_epoch)
        if batches < 1:
            raise ValueError(
                f"sampler: {self.samples_per_epoch} samples per epoch cannot fill one batch of {batch_size} on "
                f"each of {world_size} ranks; raise data.samples_per_epoch or lower training.batch_size"
            )
        self.batches_per_epoch = batches
        self.epoch = 0
        self.start_batch = 0
        self.end_epoch = 1

    def set_epoch(self, epoch: int, start_batch: int = 0, end_epoch: int | None = None) -> None:
        """Select where iteration starts: epoch `epoch`, skipping its first `start_batch` batches (resume).
        It runs through the epochs before `end_epoch` (default: this epoch only), one plan after another."""
        if not 0 <= start_batch <= self.batches_per_epoch:
            raise ValueError(f"sampler: start batch {start_batch} outside [0, {self.batches_per_epoch}]")
        end_epoch = epoch + 1 if end_epoch is None else end_epoch
        if end_epoch <= epoch:
            raise ValueError(f"sampler: end epoch {end_epoch} must come after the start epoch {epoch}")
        self.epoch = epoch
        self.start_batch = start_batch
        self.end_epoch = end_epoch

    def __len__(self) -> int:
        return (self.end_epoch - self.epoch) * self.batches_per_epoch - self.start_batch

    def epoch_plan(self, epoch: int) -> list[list[SampleKey]]:
        """This rank's batches of `epoch`, from the first one."""
        rng = np.random.default_rng([self.seed, epoch])
        num_global_batches = self.batches_per_epoch * self.world_size
        num_samples = num_global_batches * self.batch_size
        # Whole permutations of the dataset, concatenated: every sample once before any repeats.
        repeats = -(-num_samples // self.dataset_size)
        indices = np.concatenate([rng.permutation(self.dataset_size) for _ in range(repeats)])[:num_samples]
        resolutions = rng.integers(0, self.num_resolutions, size=num_global_batches)
        memory_views = rng.integers(
            self.min_memory_num_views, self.max_memory_num_views + 1, size=num_global_batches
        )
        seeds = rng.integers(0, 2**63 - 1, size=num_samples, dtype=np.int64)
        plan = []
        # Ranks interleave: global batch g goes to rank g % world_size.
        for global_batch in range(self.rank, num_global_batches, self.world_size):
            first = global_batch * self.batch_size
            plan.append(
                [
                    SampleKey(
                        int(indices[first + i]),
                        int(resolutions[global_batch]),
                        int(memory_views[global_batch]),
                        int(seeds[first + i]),
                    )
                    for i in range(self.batch_size)
                ]
            )
        return plan

    def __iter__(self) -> Iterator[list[SampleKey]]:
        yield from self.epoch_plan(self.epoch)[self.start_batch :]
        for epoch in range(self.epoch + 1, self.end_epoch):
            yield from self.epoch_plan(epoch)

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "start_batch": self.start_batch,
            "seed": self.seed,
            "dataset_size": self.dataset_size,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "batches_per_epoch": self.batches_per_epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the position; the sampling settings must match, or the data order would silently change."""
        for key in ("seed", "dataset_size", "batch_size", "world_size", "batches_per_epoch"):
            if state[key] != getattr(self, key):
                raise ValueError(
                    f"sampler state: {key} was {state[key]} in the checkpoint but is {getattr(self, key)} now; "
                    "resume with the same data, batch size, world size and seed, or start a new output_dir"
                )
        self.set_epoch(int(state["epoch"]), int(state["start_batch"]))
