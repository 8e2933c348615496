"""Where streamed post-processing keeps mask logits between its passes: host memory, then disk.

Each chunk's tensors leave the device as they arrive. On CUDA they land in page-locked memory so that the
copies overlap the next chunk's work; that memory is taken from large slabs, since one page-locked
allocation per view (tens of MB each, thousands of views) cost more than the inference itself. Past
`host_budget_bytes` (default: half the memory free when the stream starts) the chunks go to files in
`spill_dir` (a temporary folder when none is given, removed by `close`), so host memory stays bounded
whatever the number of views. The values come back bit for bit, in the dtype they were given.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path

import torch

# One page-locked allocation per this many bytes (tensors larger than a slab get their own).
SLAB_BYTES = 256 * 2**20
# Offsets inside a slab are multiples of this (any dtype's alignment).
ALIGNMENT = 256
# Share of the host memory available at the start that kept logits may use before spilling to disk.
HOST_BUDGET_SHARE = 0.5


def available_host_bytes() -> int:
    """Memory the OS reports as available now (MemAvailable), or free pages where /proc is missing."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


class PinnedSlabs:
    """Page-locked host tensors carved out of large slabs (a bump allocator; nothing is freed early)."""

    def __init__(self, slab_bytes: int = SLAB_BYTES, pin: bool = True) -> None:
        self.slab_bytes = slab_bytes
        self.pin = pin  # False: plain host memory (the same carving, on machines without CUDA)
        self.slabs: list[torch.Tensor] = []
        self.offset = slab_bytes  # the first request opens a slab

    def empty(self, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
        nbytes = shape.numel() * dtype.itemsize
        if nbytes > self.slab_bytes:
            return torch.empty(shape, dtype=dtype, pin_memory=self.pin)
        if self.offset + nbytes > self.slab_bytes:
            self.slabs.append(torch.empty(self.slab_bytes, dtype=torch.uint8, pin_memory=self.pin))
            self.offset = 0
        start = self.offset
        self.offset += -(-nbytes // ALIGNMENT) * ALIGNMENT
        return self.slabs[-1][start : start + nbytes].view(dtype).view(shape)


class KeptLogits:
    """Chunks of per-view tensors kept off the device between passes, in the order they were put."""

    def __init__(self, spill_dir: str | Path | None = None, host_budget_bytes: int | None = None) -> None:
        self.spill_dir = Path(spill_dir) if spill_dir is not None else None
        self.own_spill_dir = False
        self.host_budget = (
            int(available_host_bytes() * HOST_BUDGET_SHARE) if host_budget_bytes is None else host_budget_bytes
        )
        self.host_bytes = 0
        self.pinned = PinnedSlabs()
        # per chunk: indices, shapes, and the tensors (in memory) or the file holding them (spilled)
        self.chunks: list[tuple[list[int], list[tuple[int, int]], list[torch.Tensor] | Path]] = []

    def put(self, indices: list[int], shapes: list[tuple[int, int]], tensors: list[torch.Tensor]) -> None:
        nbytes = sum(t.numel() * t.element_size() for t in tensors)
        if self.host_bytes + nbytes > self.host_budget:
            self.chunks.append((list(indices), list(shapes), self._spill(tensors)))
            return
        self.host_bytes += nbytes
        host = []
        for tensor in tensors:
            if tensor.device.type == "cuda":
                copy = self.pinned.empty(tensor.shape, tensor.dtype)
                copy.copy_(tensor, non_blocking=True)
                host.append(copy)
            else:
                host.append(tensor)
        self.chunks.append((list(indices), list(shapes), host))

    def _spill(self, tensors: list[torch.Tensor]) -> Path:
        if self.spill_dir is None:
            self.spill_dir = Path(tempfile.mkdtemp(prefix="panst3r-kept-logits-"))
            self.own_spill_dir = True
            # removed by close(), or when the store is dropped (a run that failed half-way), or at exit
            self._cleanup = weakref.finalize(self, shutil.rmtree, self.spill_dir, True)
        path = self.spill_dir / f"mask_logits_{len(self.chunks):06d}.pt"
        # a blocking copy: the file must hold the values, not a copy still in flight
        torch.save([tensor.cpu() for tensor in tensors], path)
        return path

    @property
    def spilled_chunks(self) -> int:
        return sum(isinstance(kept, Path) for _, _, kept in self.chunks)

    def read(
        self, device: torch.device
    ) -> Iterator[tuple[list[int], list[tuple[int, int]], list[torch.Tensor]]]:
        for indices, shapes, kept in self.chunks:
            host = torch.load(kept, weights_only=True) if isinstance(kept, Path) else kept
            yield indices, shapes, [t.to(device, non_blocking=True) for t in host]

    def close(self) -> None:
        """Drop the kept tensors and remove the spill folder this store made itself."""
        self.chunks, self.pinned = [], PinnedSlabs()
        if self.own_spill_dir:
            self._cleanup()
            self.spill_dir, self.own_spill_dir = None, False
