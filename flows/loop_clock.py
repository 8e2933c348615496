"""Where the preprocess flow's loop (flows.preprocess_collector) spends its time, so that a run on many workers
says whether its orchestration kept up: time waiting for planned scenes while workers had free slots, waiting
for tasks to end (the normal state), handling ended tasks (fetching results, recording scenes), placing new
tasks (submissions: a Prefect task's takes far longer than a plain Dask task's) and writing the tables. The
flow logs it at the end of a run and returns it in its summary (`loop_seconds`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

ACTIVITIES = ("waiting_for_planning", "waiting_for_tasks", "handling", "placing", "tables")


@dataclass
class LoopClock:
    """Seconds per activity and the longest single step of each (one slow submission or table write stalls
    every worker whose next task waits behind it)."""

    total: dict[str, float] = field(default_factory=lambda: dict.fromkeys(ACTIVITIES, 0.0))
    longest: dict[str, float] = field(default_factory=lambda: dict.fromkeys(ACTIVITIES, 0.0))

    @contextmanager
    def timing(self, activity: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(activity, time.perf_counter() - started)

    def add(self, activity: str, seconds: float) -> None:
        if activity not in self.total:
            raise ValueError(f"unknown loop activity {activity!r}; one of {', '.join(ACTIVITIES)}")
        self.total[activity] += seconds
        self.longest[activity] = max(self.longest[activity], seconds)

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            activity: {"seconds": round(self.total[activity], 3), "longest": round(self.longest[activity], 3)}
            for activity in ACTIVITIES
        }

    def describe(self) -> str:
        """One log line: each activity's seconds, its longest step in brackets."""
        parts = [
            f"{activity.replace('_', ' ')} {self.total[activity]:.1f} s (longest {self.longest[activity]:.2f})"
            for activity in ACTIVITIES
        ]
        return "flow loop: " + ", ".join(parts)
