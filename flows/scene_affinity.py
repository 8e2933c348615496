"""A home worker per chunked scene, so that its frame chunks render against one cached mesh.

Without a preference, Dask spreads the chunks of each scene over all workers (each goes to the least
occupied one), so every chunk reads the mesh, maps its labels and builds its renderer again: on one
16-worker host, 160 builds for 32 scenes of 5 chunks, about 0.13 s per 3.7-s chunk. Here each scene's
chunks prefer one worker, the one with the fewest frames handed out and not yet done per thread, and may
still run anywhere (`allow_other_workers`): Dask's work stealing moves queued chunks to idle workers,
which is what spreads the first scenes of a run while later ones are still being planned, and balances
the end of the run.
"""

from __future__ import annotations

from collections import defaultdict

import distributed


class SceneHomes:
    """Chooses home workers and keeps each worker's count of outstanding frames (flow process only)."""

    def __init__(self, client: distributed.Client):
        self.client = client
        self.outstanding: dict[str, int] = defaultdict(int)
        """Worker address -> frames of chunks sent there with it as home and not yet ended."""

    def choose(self, frames: int) -> str | None:
        """The home of a scene of `frames` frames, counted as outstanding there; None when the cluster has
        no worker yet (workers still starting): the chunks then go wherever Dask sends them."""
        threads = {address: info.get("nthreads", 1) or 1 for address, info in self._workers().items()}
        if not threads:
            return None
        home = min(threads, key=lambda address: (self.outstanding[address] / threads[address], address))
        self.outstanding[home] += frames
        return home

    def ended(self, home: str | None, frames: int) -> None:
        """A chunk of `frames` frames sent with `home` ended (wherever it ran, and however)."""
        if home is not None:
            self.outstanding[home] = max(0, self.outstanding[home] - frames)

    def _workers(self) -> dict[str, dict]:
        return self.client.scheduler_info(n_workers=-1)["workers"]
