"""What the kernel benchmarks share (imported by them as a sibling module): the median CUDA-event time of a
call, the GPU to time on, and their JSON report."""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

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


def cuda_or_none(script: str) -> torch.device | None:
    """The GPU to time on, or None after telling that `script` needs one."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    print(f"{script} times CUDA kernels: no GPU here", file=sys.stderr)
    return None


def write_report(path: str, script: str, device: torch.device, fields: dict) -> None:
    """The JSON report of a kernel benchmark: what ran where, then `fields`."""
    report = {
        "benchmark": f"tests/benchmarks/{script}",
        "device": torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        **fields,
    }
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"results written to {out}")
