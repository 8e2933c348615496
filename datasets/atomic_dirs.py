"""Replacing a folder by a fully written one in one step, for every writer that commits whole folders
(a store's scenes, batch prediction's scene outputs).

The new folder is written elsewhere on the same filesystem and renamed into place (rename is atomic
there); an older folder at the target is renamed aside into a trash folder first and deleted after, so a
reader sees the old folder, briefly nothing, or the new one, never a mixture.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


def swap_in_directory(staging: Path, target: Path, trash_dir: Path) -> None:
    """Move the fully written `staging` folder to `target`, putting an existing `target` into `trash_dir`."""
    aside = None
    if target.exists():
        trash_dir.mkdir(parents=True, exist_ok=True)
        aside = trash_dir / f"{target.name}.{uuid.uuid4().hex}"
        os.rename(target, aside)
    os.rename(staging, target)
    fsync_dir(target.parent)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def fsync_dir(directory: Path) -> None:
    """Make renames inside `directory` durable: after a crash the old name cannot come back."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a directory; the rename itself still happened
    finally:
        os.close(fd)


def remove_leftovers(folders: list[Path]) -> list[str]:
    """Empty and remove the staging/trash `folders` of interrupted runs (call it only while no run writes
    there); returns the names of the entries removed."""
    removed = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
        try:
            folder.rmdir()
        except OSError:
            pass  # something could not be removed; the next sweep tries again
    return removed
