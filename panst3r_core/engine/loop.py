"""The training loop: gradient accumulation, AMP, DDP, per-iteration LR schedule, checkpoints, exact resume.

Exact resume rests on three things: the sampler's plan depends only on (seed, epoch) and can start at any
batch; every rank's RNG states are saved with each checkpoint (and re-seeded at every epoch start, as the
official trainer does); and creating the loader iterator never consumes the main RNG stream.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from panst3r_core.engine.batch import TrainBatch
from panst3r_core.engine.callbacks import IterationRecord, TrainCallback
from panst3r_core.engine.checkpointing import (
    FINAL,
    LAST,
    Progress,
    capture_rng_state,
    copy_checkpoint,
    find_resume_checkpoint,
    load_weights,
    read_progress,
    read_training_state,
    restore_rng_state,
    save_checkpoint,
)
from panst3r_core.engine.config import TrainConfig, TrainingConfig
from panst3r_core.engine.initial_weights import load_initial_weights
from panst3r_core.engine.loss_values import LossValues, NonFiniteLossGuard, RunningMeans
from panst3r_core.engine.objectives import ForwardFn, apply_freezing, build_objective
from panst3r_core.engine.optim import base_learning_rate, build_optimizer
from panst3r_core.engine.sampler import BatchedViewSampler
from panst3r_core.engine.schedule import learning_rate_at, set_learning_rate
from panst3r_core.losses.criterion import PanopticCriterion
from panst3r_core.losses.distributed import all_reduce_mean, is_distributed, rank, world_size
from panst3r_core.training_timings import DATA_WAIT_SECONDS, ITERATION_SECONDS

logger = logging.getLogger(__name__)

InitWeightsFn = Callable[[nn.Module, TrainingConfig], None]


@dataclass
class TrainData:
    """What the loop needs from the data side."""

    dataset_size: int
    """Number of distinct samples the sampler indexes (e.g. pairs in the store)."""
    make_loader: Callable[[BatchedViewSampler], Iterable[Any]]
    """Builds the batch iterable (typically `DataLoader(dataset, batch_sampler=sampler, ...)`); called once,
    then iterated once per run after `sampler.set_epoch(first epoch, first batch, end_epoch=epochs)`, so it
    yields every remaining epoch's batches in one pass. Batches are TrainBatch or mappings with its keys."""
    vocabulary: Sequence[str]
    """Global class names; targets are resolved into it by name."""
    class_embeddings: torch.Tensor
    """(C, D) embeddings of `vocabulary`, passed to the model."""
    checkpoint_metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Extra inference metadata stored with every checkpoint, e.g. {"text_embeddings": "hashed"};
    `class_names` (= vocabulary) is added automatically."""


# Steps a launch takes before its steady-state rate is timed.
STEADY_AFTER_STEPS = 10


@dataclass
class TrainResult:
    output_dir: Path
    final_checkpoint: Path | None
    """checkpoint-final; None when this launch stopped early (time budget) or on ranks other than 0."""
    global_step: int
    epochs: int
    resumed_from: Path | None
    stopped_early: bool = False
    """The time budget ran out before the last epoch: checkpoint-last holds the position to resume from."""
    start_step: int = 0
    """Optimizer steps done before this launch (non-zero when resumed)."""
    seconds: float = 0.0
    """Wall-clock seconds of this launch's loop (loader start-up included)."""
    steady_steps: int = 0
    steady_seconds: float = 0.0
    """Optimizer steps and seconds after this launch's first STEADY_AFTER_STEPS steps: the rate without the
    loader's start-up and the first launches of every kernel, which dominate a launch of a minute or two."""


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: torch.device | str | None) -> torch.device:
    if device is None or device == "auto":
        return (
            torch.device("cuda", torch.cuda.current_device())
            if torch.cuda.is_available()
            else torch.device("cpu")
        )
    return torch.device(device)


def autocast_dtype(amp: bool | str, device: torch.device) -> torch.dtype | None:
    """None for fp32; fp16 is refused on CPU (no fp16 GradScaler path worth using there)."""
    if amp is False:
        return None
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("training.amp: fp16 needs a CUDA device; use bf16 or false on the CPU")
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def steps_per_epoch(config: TrainConfig, world: int) -> int:
    """Optimizer steps per epoch: whole accumulation cycles only (a trailing partial cycle is dropped, so no
    gradient ever spans two epochs or a checkpoint)."""
    training = config.training
    batches = config.data.samples_per_epoch // (training.batch_size * world)
    steps = batches // training.accum_iter
    if training.max_steps_per_epoch is not None:
        steps = min(steps, training.max_steps_per_epoch)
    if steps < 1:
        raise ValueError(
            f"data.samples_per_epoch ({config.data.samples_per_epoch}) is too small for one optimizer step of "
            f"batch_size {training.batch_size} x accum_iter {training.accum_iter} x {world} rank(s)"
        )
    return steps


def build_sampler(config: TrainConfig, dataset_size: int) -> BatchedViewSampler:
    world = world_size()
    return BatchedViewSampler(
        dataset_size=dataset_size,
        batch_size=config.training.batch_size,
        num_resolutions=len(config.data.resolutions),
        min_memory_num_views=config.data.min_memory_num_views,
        max_memory_num_views=config.data.max_memory_num_views,
        samples_per_epoch=config.data.samples_per_epoch,
        max_batches_per_epoch=steps_per_epoch(config, world) * config.training.accum_iter,
        world_size=world,
        rank=rank(),
        seed=config.training.seed,
    )


def _iterate_keeping_rng(loader: Iterable[Any]) -> Iterator[Any]:
    # DataLoader draws its workers' base seed from the global torch RNG when an iterator is created; that
    # draw would shift the main stream differently in a resumed run, so it is undone.
    state = torch.get_rng_state()
    iterator = iter(loader)
    torch.set_rng_state(state)
    return iterator


def _gather_rng_states() -> list[dict[str, Any]]:
    state = capture_rng_state()
    if not is_distributed():
        return [state]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, state)
    return gathered


class Trainer:
    """Holds the state of one run; `train()` is the usual entry point."""

    def __init__(
        self,
        config: TrainConfig,
        model: nn.Module,
        data: TrainData,
        criterion: PanopticCriterion | None = None,
        callbacks: Sequence[TrainCallback] = (),
        device: torch.device | str | None = None,
        forward: ForwardFn | None = None,
        init_weights: InitWeightsFn | None = None,
    ) -> None:
        self.config = config
        self.training = config.training
        self.data = data
        self.callbacks = list(callbacks)
        self.device = resolve_device(device)
        self.amp_dtype = autocast_dtype(self.training.amp, self.device)
        self.rank = rank()
        self.world = world_size()
        self.output_dir = Path(self.training.output_dir)
        self.objective = build_objective(config, data.vocabulary, criterion, forward)
        if self.device.type == "cuda":
            allow_tf32 = not self.training.disable_tf32
            torch.backends.cuda.matmul.allow_tf32 = allow_tf32
            torch.backends.cudnn.allow_tf32 = allow_tf32

        self.model = model.to(self.device)
        apply_freezing(self.model, self.objective, self.training)
        self.resume_path = find_resume_checkpoint(self.output_dir) if self.training.resume else None
        if self.resume_path is not None:
            load_weights(self.model, self.resume_path, strict=True)
        else:
            self._initialise_weights(init_weights)

        self.base_lr = base_learning_rate(self.training, self.world)
        self.optimizer = build_optimizer(self.model, self.training, self.base_lr)
        self.nonfinite_guard = NonFiniteLossGuard()
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.training.amp == "fp16")
        self.sampler = build_sampler(config, data.dataset_size)
        self.batches_per_epoch = self.sampler.batches_per_epoch
        self.progress = Progress()
        self._pending_rng_state: dict[str, Any] | None = None
        self._loop_started = time.monotonic()
        if self.resume_path is not None:
            self._restore(self.resume_path)

        self.ddp_model: nn.Module = self.objective.runnable(self.model)
        if is_distributed():
            find_unused = self.training.find_unused_parameters or self.training.finetune_must3r_decoder
            self.ddp_model = nn.parallel.DistributedDataParallel(
                self.ddp_model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=find_unused,
            )
        self.class_embeddings = data.class_embeddings.to(self.device)

    # -- setup ---------------------------------------------------------------------------------------------

    def _initialise_weights(self, init_weights: InitWeightsFn | None) -> None:
        """Fresh run: the run's weights settings (`load_initial_weights`), or the caller's own `init_weights`."""
        if init_weights is not None:
            init_weights(self.model, self.training)
            return
        load_initial_weights(self.model, self.training.must3r_chkpt, self.training.chkpt)

    def _restore(self, path: Path) -> None:
        state = read_training_state(path)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.sampler.load_state_dict(state["sampler"])
        self.progress = read_progress(path)
        rng_states = state["rng"]
        if len(rng_states) != self.world:
            raise ValueError(
                f"{path}: saved by {len(rng_states)} rank(s), resumed with {self.world}; exact resume needs "
                "the same world size (or start a new output_dir)"
            )
        # Applied when the loop starts, so that nothing done during setup shifts the restored streams.
        self._pending_rng_state = rng_states[self.rank]
        logger.info(
            "resuming from %s at epoch %d batch %d (step %d)",
            path,
            self.progress.epoch,
            self.progress.batch,
            self.progress.global_step,
        )

    # -- checkpoints ---------------------------------------------------------------------------------------

    def _config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    def _model_metadata(self) -> dict[str, Any]:
        return {**self.data.checkpoint_metadata, "class_names": list(self.data.vocabulary)}

    def _save_last(self, epoch: int, batch: int) -> Path | None:
        """Write checkpoint-last at (epoch, batch done); collective (RNG states gathered from every rank)."""
        self.nonfinite_guard.check()  # never a checkpoint of weights updated by a non-finite loss
        rng_states = _gather_rng_states()
        if self.rank != 0:
            return None
        if batch >= self.batches_per_epoch:
            progress = Progress(epoch=epoch + 1, batch=0, global_step=self.progress.global_step)
        else:
            progress = Progress(epoch=epoch, batch=batch, global_step=self.progress.global_step)
        sampler_state = {**self.sampler.state_dict(), "epoch": progress.epoch, "start_batch": progress.batch}
        training_state = {
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": sampler_state,
            "rng": rng_states,
        }
        path = save_checkpoint(
            self.output_dir / LAST, self.model, self._config_dict(), progress, training_state
        )
        for callback in self.callbacks:
            callback.on_checkpoint(path, progress.epoch, progress.global_step)
        return path

    # -- loop ----------------------------------------------------------------------------------------------

    def _out_of_time(self) -> bool:
        """Whether the launch's time budget is spent; collective under DDP (every rank must stop at the same
        step, and their clocks differ)."""
        budget = self.training.time_budget_s
        if budget is None:
            return False
        spent = time.monotonic() - self._loop_started >= budget
        if is_distributed():
            flag = torch.tensor([float(spent)], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            spent = bool(flag.item())
        return spent

    def run(self) -> TrainResult:
        self._loop_started = self._iteration_ended = time.monotonic()
        self._steady_since: float | None = None
        if self.rank == 0:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        loader = self.data.make_loader(self.sampler)
        start = self.progress
        # One pass over all remaining epochs: a fresh iterator per epoch would make the GPU wait at every
        # epoch start while one loader worker builds a whole batch (about 4 s a 50-step epoch on the H200).
        batches: Iterator[Any] = iter(())
        if start.epoch < self.training.epochs:  # a finished run resumed: no loader workers to start
            self.sampler.set_epoch(start.epoch, start.batch, end_epoch=self.training.epochs)
            batches = _iterate_keeping_rng(loader)
        if self.rank == 0:
            for callback in self.callbacks:
                callback.on_train_start(start.epoch, start.batch, start.global_step)
        self.model.train()
        if self._pending_rng_state is not None:
            restore_rng_state(self._pending_rng_state)
            self._pending_rng_state = None
        start_step = start.global_step
        self._steady_from_step = start_step + STEADY_AFTER_STEPS
        stopped = False
        for epoch in range(start.epoch, self.training.epochs):
            first_batch = start.batch if epoch == start.epoch else 0
            if first_batch == 0:
                # Per-epoch reseed (official): epoch e's randomness does not depend on earlier epochs.
                seed_everything(self.training.seed + epoch * self.world + self.rank)
            stopped = self._run_epoch(epoch, first_batch, batches)
            if not stopped and epoch + 1 < self.training.epochs:
                stopped = self._out_of_time()  # checkpoint-last already points at the next epoch
            if stopped:
                break
        ended = time.monotonic()
        seconds = ended - self._loop_started
        steady = {}
        if self._steady_since is not None:
            steady = {
                "steady_steps": self.progress.global_step - self._steady_from_step,
                "steady_seconds": ended - self._steady_since,
            }
        if stopped:
            if self.rank == 0:
                logger.info(
                    "time budget of %.0f s spent after %.0f s: stopped at step %d; checkpoint-last resumes it",
                    self.training.time_budget_s,
                    seconds,
                    self.progress.global_step,
                )
            return TrainResult(
                self.output_dir,
                None,
                self.progress.global_step,
                self.training.epochs,
                self.resume_path,
                stopped_early=True,
                start_step=start_step,
                seconds=seconds,
                **steady,
            )
        final = None
        if self.rank == 0:
            final = save_checkpoint(
                self.output_dir / FINAL,
                self.model,
                self._config_dict(),
                Progress(epoch=self.training.epochs, batch=0, global_step=self.progress.global_step),
                model_metadata=self._model_metadata(),
            )
            for callback in self.callbacks:
                callback.on_train_end(final, self.progress.global_step)
        return TrainResult(
            self.output_dir,
            final,
            self.progress.global_step,
            self.training.epochs,
            self.resume_path,
            start_step=start_step,
            seconds=seconds,
            **steady,
        )

    def _run_epoch(self, epoch: int, first_batch: int, iterator: Iterator[Any]) -> bool:
        """One epoch from `first_batch`, taking its batches from the run's one pass over the loader; True
        when the time budget stopped it early (checkpoint-last written at the stopping step)."""
        training = self.training
        accum = training.accum_iter
        window, epoch_means = RunningMeans(), RunningMeans()
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.zero_grad(set_to_none=True)
        for batch_index in range(first_batch, self.batches_per_epoch):
            asked = time.monotonic()
            try:
                raw_batch = next(iterator)
            except StopIteration:
                raise ValueError(
                    f"the loader ended after {batch_index - first_batch} batches of epoch {epoch}; it must "
                    f"yield one batch per sampler entry ({len(self.sampler)} from the run's start)"
                ) from None
            data_wait = time.monotonic() - asked
            if batch_index % accum == 0:
                lr = learning_rate_at(
                    epoch + batch_index / self.batches_per_epoch,
                    self.base_lr,
                    training.min_lr,
                    training.warmup_epochs,
                    training.epochs,
                )
                set_learning_rate(self.optimizer, lr)
            step_now = (batch_index + 1) % accum == 0
            losses = self._forward_backward(TrainBatch.from_any(raw_batch), accum, sync=step_now)
            if step_now:
                if training.clip_grad is not None:
                    self.scaler.unscale_(self.optimizer)  # clip the true gradients, not fp16-scaled ones
                    trainable = [p for group in self.optimizer.param_groups for p in group["params"]]
                    torch.nn.utils.clip_grad_norm_(trainable, training.clip_grad)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                self.progress.global_step += 1
                if self.progress.global_step == self._steady_from_step:
                    self._steady_since = time.monotonic()
            window.add(losses, self._timings(data_wait))
            epoch_means.add(losses)
            record = IterationRecord(epoch, batch_index, self.progress.global_step, step_now, lr, losses)
            for callback in self.callbacks:
                callback.on_iteration(record)
            if not step_now:
                continue
            if training.print_freq and self.progress.global_step % training.print_freq == 0:
                self._log(window, lr, epoch + (batch_index + 1) / self.batches_per_epoch)
                window = RunningMeans()
            done = batch_index + 1
            if done >= self.batches_per_epoch:
                continue  # the epoch end below writes checkpoint-last
            every = training.checkpoint_every_steps
            stop = self._out_of_time()
            if stop or (every and self.progress.global_step % every == 0):
                self._save_last(epoch, done)
            if stop:
                return True
        self.nonfinite_guard.check()
        epoch_metrics = all_reduce_mean(epoch_means.means(), device=self.device)
        if self.rank == 0:
            for callback in self.callbacks:
                callback.on_epoch_end(epoch, epoch_metrics)
        last = self._save_last(epoch, self.batches_per_epoch)
        if self.rank == 0 and last is not None and training.keep_freq and epoch % training.keep_freq == 0:
            kept = copy_checkpoint(last, self.output_dir / f"checkpoint-{epoch}")
            for callback in self.callbacks:
                callback.on_checkpoint(kept, epoch + 1, self.progress.global_step)
        return False

    def _forward_backward(self, batch: TrainBatch, accum: int, sync: bool) -> LossValues:
        batch = batch.to(self.device)
        no_sync = (
            self.ddp_model.no_sync()
            if isinstance(self.ddp_model, nn.parallel.DistributedDataParallel) and not sync
            else contextlib.nullcontext()
        )
        with no_sync:
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                outputs = self.objective.forward(self.ddp_model, batch, self.class_embeddings)
            losses = self.objective.loss(outputs, batch)
            total = losses[self.objective.total_name]
            self.nonfinite_guard.note(self.progress.global_step, total)
            self.scaler.scale(total / accum).backward()
        return LossValues(losses)

    def _timings(self, data_wait: float) -> dict[str, float]:
        """Seconds of this iteration (since the previous one ended, checkpoints included) and of it spent
        waiting for the loader: logged per window, they tell a loader-bound run from a compute-bound one."""
        now = time.monotonic()
        iteration, self._iteration_ended = now - self._iteration_ended, now
        return {ITERATION_SECONDS: iteration, DATA_WAIT_SECONDS: data_wait}

    def _log(self, window: RunningMeans, lr: float, epoch_f: float) -> None:
        self.nonfinite_guard.check()
        metrics = all_reduce_mean(window.means(), device=self.device)
        if self.rank != 0:
            return
        metrics.update(lr=lr, epoch=epoch_f)
        logger.info(
            "epoch %.3f step %d %s %.4f lr %.3g, %.3f s/iteration (%.3f s waiting for data)",
            epoch_f,
            self.progress.global_step,
            self.objective.total_name,
            metrics.get(self.objective.total_name, float("nan")),
            lr,
            metrics.get(ITERATION_SECONDS, float("nan")),
            metrics.get(DATA_WAIT_SECONDS, float("nan")),
        )
        for callback in self.callbacks:
            callback.on_log(metrics, self.progress.global_step)


def train(
    config: TrainConfig,
    model: nn.Module,
    data: TrainData,
    criterion: PanopticCriterion | None = None,
    callbacks: Sequence[TrainCallback] = (),
    device: torch.device | str | None = None,
    forward: ForwardFn | None = None,
    init_weights: InitWeightsFn | None = None,
) -> TrainResult:
    """Train `model` (auto-resuming from `config.training.output_dir/checkpoint-last` when present).

    Under torchrun, initialise the process group before calling: the model is then wrapped in DDP, the
    sampler is sliced per rank, num_masks and logged losses are averaged over ranks, and rank 0 writes
    checkpoints and calls the rank-0 callbacks. Seed (seed + rank) before building the model so that a
    fresh run's initial weights are reproducible.
    """
    trainer = Trainer(config, model, data, criterion, callbacks, device, forward, init_weights)
    return trainer.run()
