"""Median CUDA-event time of a call, for the kernel benchmarks (imported by them as a sibling module)."""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch


def time_calls(fn: Callable[[], object], iterations: int) -> float:
    """Median milliseconds of `fn()` over `iterations` calls after three untimed ones."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(iterations):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)
