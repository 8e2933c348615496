"""Peak memory of a block of work, as the evaluation reports it."""

from __future__ import annotations

import resource

CUDA_KIND = "cuda_max_allocated"
PROCESS_KIND = "process_max_rss"


class PeakMemory:
    """Peak memory of a block: CUDA max allocated bytes on a GPU, else the process's peak resident set
    (a high-water mark over the process's life, so it never decreases between configurations)."""

    def __init__(self, device: str):
        self.device = device
        self.kind = CUDA_KIND if device.startswith("cuda") else PROCESS_KIND

    def __enter__(self) -> PeakMemory:
        if self.kind == CUDA_KIND:
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc) -> None:
        pass

    def megabytes(self) -> float:
        if self.kind == CUDA_KIND:
            import torch

            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
