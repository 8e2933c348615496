"""The output folder of a batch run: `OUT/<scene>/` per predicted scene, committed whole, and the run's
bookkeeping in folders whose names start with "_" (which scene ids may not).

    OUT/<scene>/              the writer's files (datasets/prediction_export.py) + manifest.json
    OUT/_staging/<scene>.<uuid>/  a scene being written; renamed to OUT/<scene>/ once complete
    OUT/_trash/               an older OUT/<scene>/ on its way out during a re-commit
    OUT/_failed/<scene>.json  the last failed attempt of a scene without a current prediction
    OUT/_cache/digests.json   content digests of checkpoint files, so a re-run does not re-read them

A scene folder therefore holds a complete prediction or does not exist: a failure or a killed worker
leaves at most a staging folder, which the next run's sweep removes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from datasets.atomic_dirs import remove_leftovers, swap_in_directory
from datasets.store.hashing import DigestCache
from datasets.store.lock import store_lock

log = logging.getLogger(__name__)

STAGING_DIR = "_staging"
TRASH_DIR = "_trash"
FAILURES_DIR = "_failed"
CACHE_DIR = "_cache"
RESERVED_PREFIXES = ("_", ".")


def check_scene_id(scene_id: str) -> None:
    """ValueError for a scene id that cannot name an output folder beside the bookkeeping folders."""
    if not scene_id or scene_id.startswith(RESERVED_PREFIXES) or "/" in scene_id or "\\" in scene_id:
        raise ValueError(
            f"scene id {scene_id!r} cannot name an output folder: it must not be empty, start with "
            f"{' or '.join(repr(p) for p in RESERVED_PREFIXES)} (reserved for the run's bookkeeping) or "
            "contain a path separator; rename the folder or scene"
        )


class BatchOutput:
    """The output folder `root` of a batch run (created on first write)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def scene_dir(self, scene_id: str) -> Path:
        return self.root / scene_id

    def commit(self, scene_id: str, fill: Callable[[Path], None]) -> Path:
        """`fill(folder)` writes the scene's files into a staging folder, which then replaces OUT/<scene>
        in one rename; if `fill` raises, the staging folder is removed and OUT/<scene> is left as it was."""
        check_scene_id(scene_id)
        staging = self.root / STAGING_DIR / f"{scene_id}.{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        try:
            fill(staging)
            swap_in_directory(staging, self.scene_dir(scene_id), self.root / TRASH_DIR)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return self.scene_dir(scene_id)

    def lock(self) -> AbstractContextManager[None]:
        """One run per output folder at a time (a second one would sweep the first one's staging)."""
        return store_lock(self.root, busy=f"output folder {self.root} is being written by another run")

    def sweep(self) -> list[str]:
        """Remove what killed runs left in staging and trash, and those folders once empty (call it while
        no run writes here)."""
        removed = remove_leftovers([self.root / STAGING_DIR, self.root / TRASH_DIR])
        if removed:
            log.info("removed %d leftovers of interrupted runs from %s", len(removed), self.root)
        return removed

    # ---------------------------------------------------------------- failures

    def write_failure(self, scene_id: str, record: dict[str, Any]) -> None:
        """Record the scene's failed attempt (replacing an older record) by a rename of a whole file."""
        path = self._failure_path(scene_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    def read_failure(self, scene_id: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._failure_path(scene_id).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def clear_failure(self, scene_id: str) -> None:
        self._failure_path(scene_id).unlink(missing_ok=True)

    def _failure_path(self, scene_id: str) -> Path:
        return self.root / FAILURES_DIR / f"{scene_id}.json"

    # ---------------------------------------------------------------- caches

    def digest_cache(self) -> DigestCache:
        """Content digests of checkpoint files, remembered between runs (`save()` it after use)."""
        return DigestCache(self.root / CACHE_DIR / "digests.json")
