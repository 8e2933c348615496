"""One launch per run folder (and node) at a time: an advisory lock on a file of the run folder that holds the
launcher's pid, like the store's lock for preprocess runs (`datasets.store.lock`).

The lock is an flock on an open file: the kernel drops it when the last process holding that open file ends,
so a killed launcher never leaves a stale lock (its pid stays in the file and is overwritten by the next
holder). The launch hands the descriptor to torchrun, so the folder stays held until torchrun has ended too:
after a SIGKILL of the launcher, torchrun still stops its workers before a new launch may start.

Re-entrant within one process: the `train` flow holds the folder from before it writes config.json until its
launch ends, and the launch inside takes the same lock again.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_held: dict[Path, int] = {}
"""Lock files this process holds -> their descriptors."""


class RunFolderBusyError(ValueError):
    """Another live launch holds the run folder."""


def _holder_note(fd: int) -> str:
    text = os.pread(fd, 64, 0).decode(errors="replace").strip()
    if not text.isdigit():
        return "pid unknown"
    try:
        os.kill(int(text), 0)
    except ProcessLookupError:
        return f"pid {text}, which has exited; its torchrun is still stopping its workers, retry in a minute"
    except PermissionError:
        pass
    return f"pid {text}"


@contextmanager
def hold_run_folder(run_dir: Path, lock_name: str) -> Iterator[int]:
    """Hold `run_dir/lock_name` for the block and yield its descriptor (for the launched processes to
    inherit); RunFolderBusyError naming the holder when another launch has it."""
    path = (Path(run_dir) / lock_name).resolve()
    if path in _held:
        yield _held[path]
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFolderBusyError(
                f"run folder {path.parent} is in use by another launch ({_holder_note(fd)}); wait for it to end "
                "or choose another --run-name"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held[path] = fd
        try:
            yield fd
        finally:
            del _held[path]
    finally:
        os.close(fd)


def check_run_folder_free(run_dir: Path, lock_name: str) -> None:
    """RunFolderBusyError now, before anything is started, when another launch holds the folder."""
    if (Path(run_dir) / lock_name).is_file():
        with hold_run_folder(run_dir, lock_name):
            pass
