"""One preprocess run per store at a time: an advisory lock on `STORE/.lock`.

A second run would sweep the first one's staging directories and race on the tables. The lock is an
flock, so the kernel releases it when the holder dies (a killed run never leaves a stale lock).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = ".lock"


@contextmanager
def store_lock(store: str | Path, busy: str | None = None) -> Iterator[None]:
    """Hold the store's (or any output folder's) lock for the block; ValueError naming the holder's pid if
    another run has it. `busy` replaces the message's "being written by ..." part for other folders."""
    store = Path(store)
    store.mkdir(parents=True, exist_ok=True)
    path = store / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            message = busy or f"store {store} is being written by another preprocess run"
            fix = "wait for it to finish" if busy else "wait for it to finish or use another --store"
            raise ValueError(f"{message} (pid {holder}); {fix}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock
