"""Hooks through which a training run reports progress (MLflow, JSONL files, tests)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class IterationRecord:
    """One loader batch on this rank: local (not all-reduced) loss values. Reading `losses` waits for the
    device to finish the iteration (they stay there until read), so a callback that needs them only now and
    then should read them only then."""

    epoch: int
    batch: int
    global_step: int
    """Optimizer steps done after this iteration."""
    optimizer_stepped: bool
    lr: float
    losses: Mapping[str, float] = field(default_factory=dict)


class TrainCallback:
    """Base class with no-op hooks. `on_iteration` runs on every rank; the others on rank 0 only."""

    def on_train_start(self, start_epoch: int, start_batch: int, global_step: int) -> None:
        """Training (re)starts at this position (non-zero when resumed)."""

    def on_iteration(self, record: IterationRecord) -> None:
        """After every loader batch."""

    def on_log(self, metrics: dict[str, float], step: int) -> None:
        """Every `print_freq` optimizer steps: loss terms averaged over the window and over ranks, `lr`, `epoch`
        (fractional). `step` is the optimizer step count."""

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        """Loss terms averaged over the epoch's iterations (those run in this process) and over ranks."""

    def on_checkpoint(self, path: Path, epoch: int, step: int) -> None:
        """A checkpoint directory was written; training would continue from it in `epoch` (0-based) after
        `step` optimizer steps."""

    def on_train_end(self, final_checkpoint: Path, step: int) -> None:
        """Training finished and checkpoint-final was written."""


class JsonlMetricsWriter(TrainCallback):
    """Appends one JSON object per line: {"kind": "log"|"epoch"|"checkpoint"|"end", ...}."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _write(self, record: dict) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")

    def on_log(self, metrics: dict[str, float], step: int) -> None:
        self._write({"kind": "log", "step": step, **metrics})

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self._write({"kind": "epoch", "epoch": epoch, **metrics})

    def on_checkpoint(self, path: Path, epoch: int, step: int) -> None:
        self._write({"kind": "checkpoint", "path": str(path), "epoch": epoch, "step": step})

    def on_train_end(self, final_checkpoint: Path, step: int) -> None:
        self._write({"kind": "end", "path": str(final_checkpoint), "step": step})
