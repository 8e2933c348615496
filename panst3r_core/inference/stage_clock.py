"""Per-stage durations of an inference run without synchronising the device between stages.

On CUDA each mark records an event on the current stream; durations are read only when asked for (after the
caller has synchronised anyway), so timing does not change the overlap of host and device work that it
measures. Work on another stream is timed by a clock of its own, made and marked on that stream, and
`include`d. On the CPU marks are host clock readings.
"""

from __future__ import annotations

import time

import torch


class StageClock:
    def __init__(self, device: torch.device) -> None:
        self._cuda = device.type == "cuda"
        self._marks: list[tuple[str, object]] = [("start", self._now())]
        self._beside: list[StageClock] = []

    def _now(self) -> object:
        if self._cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def mark(self, stage: str) -> None:
        """End of `stage` (which began at the previous mark)."""
        self._marks.append((stage, self._now()))

    def include(self, beside: StageClock) -> None:
        """Report the stages of a clock that timed work on another stream (overlapping these stages)."""
        self._beside.append(beside)

    def seconds(self) -> dict[str, float]:
        """Seconds per stage (summed when a stage name repeats; included clocks' stages too); waits for the
        last CUDA event."""
        out: dict[str, float] = {}
        for beside in self._beside:
            for stage, elapsed in beside.seconds().items():
                out[stage] = out.get(stage, 0.0) + elapsed
        if self._cuda:
            self._marks[-1][1].synchronize()  # type: ignore[union-attr]
        for (_, before), (stage, after) in zip(self._marks, self._marks[1:]):
            if self._cuda:
                elapsed = before.elapsed_time(after) / 1000.0  # type: ignore[union-attr]
            else:
                elapsed = after - before  # type: ignore[operator]
            out[stage] = out.get(stage, 0.0) + elapsed
        return out
