"""An iteration's loss terms, left on their device until someone reads them.

Reading them every iteration (`.item()` per term, and the total before backward) made the host wait for each
step's forward and backward to finish before it could load the next batch and queue the next forward. On a
GPU the stage-2 step is host-bound, so every such wait is idle GPU time. The loop now sums the terms on the
device in float64 (the same sums, to the last bit, as Python floats of the float32 values) and reads them once
per logging window; the non-finite check reads the pending totals at the same points, before any checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import torch


class LossValues(Mapping[str, float]):
    """One iteration's loss terms as a read-only mapping of floats; the device is read on first access."""

    def __init__(self, losses: Mapping[str, torch.Tensor]) -> None:
        self.names = tuple(losses)
        values = [value.detach().reshape(()) for value in losses.values()]
        self.stacked = (
            torch.stack(values).to(torch.float64) if values else torch.zeros(0, dtype=torch.float64)
        )
        self._floats: dict[str, float] | None = None

    def floats(self) -> dict[str, float]:
        if self._floats is None:
            self._floats = dict(zip(self.names, self.stacked.tolist()))
        return self._floats

    def __getitem__(self, name: str) -> float:
        return self.floats()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


class RunningMeans:
    """Sums of loss terms (kept on their device) and of host floats such as timings, for window and epoch
    means; `means()` is the only read of the device."""

    def __init__(self) -> None:
        self.device_sums: dict[tuple[str, ...], torch.Tensor] = {}
        self.host_sums: dict[str, float] = {}
        self.count = 0

    def add(self, losses: LossValues, host_values: Mapping[str, float] | None = None) -> None:
        previous = self.device_sums.get(losses.names)
        self.device_sums[losses.names] = losses.stacked if previous is None else previous + losses.stacked
        for key, value in (host_values or {}).items():
            self.host_sums[key] = self.host_sums.get(key, 0.0) + value
        self.count += 1

    def means(self) -> dict[str, float]:
        sums: dict[str, float] = {}
        for names, stacked in self.device_sums.items():
            for name, value in zip(names, stacked.tolist()):
                sums[name] = sums.get(name, 0.0) + value
        sums.update(self.host_sums)
        return {key: value / max(self.count, 1) for key, value in sums.items()}


class NonFiniteLossGuard:
    """The totals of the steps not yet checked; `check()` raises for the first non-finite one.

    Checked before every log line and checkpoint: a run whose loss became NaN or inf still stops with the
    step it happened at, and no checkpoint written after that step exists."""

    def __init__(self) -> None:
        self.pending: list[tuple[int, torch.Tensor]] = []

    def note(self, step: int, total: torch.Tensor) -> None:
        self.pending.append((step, total.detach().reshape(())))

    def check(self) -> None:
        if not self.pending:
            return
        steps = [step for step, _ in self.pending]
        values = torch.stack([total for _, total in self.pending]).tolist()
        self.pending.clear()
        for step, value in zip(steps, values):
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"loss is {value} at step {step}; stopping (lower training.lr, or try amp=false)"
                )
