"""One scene end to end (read -> preprocess -> commit), and the skip/redo decision made before it.

These are the library functions behind the `preprocess` flow's tasks; they run in any process and
return small dicts, never arrays.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets.preprocess.result import PreprocessConfig
from datasets.scannetpp.reader import read_scene
from datasets.store import hashing
from datasets.store.reader import read_scene_attrs
from datasets.store.schema import StoreLayout
from datasets.store.writer import write_scene

log = logging.getLogger(__name__)

BAD_INPUT_ERRORS = (ValueError, FileNotFoundError, KeyError)
"""Errors the scene's own files cause (BadSceneInput is a ValueError): retrying cannot help."""


def is_bad_input(exc: BaseException) -> bool:
    return isinstance(exc, BAD_INPUT_ERRORS)


def failure_reason(exc: BaseException) -> str:
    """One line for the failed row: the message itself for bad input, prefixed by the type otherwise."""
    text = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc).strip()
    first = text.splitlines()[0] if text else ""
    if is_bad_input(exc) and first:
        return first
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


@dataclass(frozen=True)
class ScenePlan:
    scene_id: str
    run: bool
    """False when a committed scene has the same source hash, config hash and code version."""
    source_hash: str | None
    """None when the inputs could not be read (the task then fails with the reader's message)."""
    why: str


def plan_scene(
    store: Path,
    root: Path,
    scene_id: str,
    pairs_dir: Path | None,
    config_hash: str,
    code_version: str,
    digests: hashing.DigestCache | None = None,
) -> ScenePlan:
    """Decide skip vs redo from content, never from a result cache (which ignores deleted outputs)."""
    layout = StoreLayout(Path(store))
    try:
        record = read_scene(root, scene_id, pairs_dir)
        source = hashing.source_hash(record.source_files, root, digests)
    except BAD_INPUT_ERRORS as exc:
        return ScenePlan(scene_id, True, None, f"unreadable input: {failure_reason(exc)}")
    if not (layout.scene_dir(scene_id) / "zarr.json").is_file():
        return ScenePlan(scene_id, True, source, "not in the store")
    attrs = read_scene_attrs(layout, scene_id)
    changed = [
        name
        for name, now, then in (
            ("inputs", source, attrs.get("source_hash")),
            ("config", config_hash, attrs.get("config_hash")),
            ("code", code_version, attrs.get("code_version")),
        )
        if now != then
    ]
    if layout.failure_path(scene_id).is_file():
        changed.append("last attempt failed")
    if changed:
        return ScenePlan(scene_id, True, source, "changed: " + ", ".join(changed))
    return ScenePlan(scene_id, False, source, "up to date")


def run_scene(
    root: str | Path,
    store: str | Path,
    scene_id: str,
    config: PreprocessConfig,
    pairs_dir: str | Path | None = None,
    split: str = "",
    source_hash: str | None = None,
) -> dict[str, Any]:
    """Read, preprocess and commit one scene. Returns `{scene_id, status, frames, seconds, path}`.

    Raises the reader's/preprocessing's ValueError/FileNotFoundError for bad input, anything else for
    transient trouble; a failure leaves the store exactly as it was."""
    # OpenGL picks its platform at import; workers of a user-provided Dask cluster may lack the variable.
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    from datasets.preprocess.scene import preprocess_scene  # imports pyrender

    start = time.perf_counter()
    record = read_scene(root, scene_id, pairs_dir)
    if source_hash is None:
        source_hash = hashing.source_hash(record.source_files, root)
    hashed = time.perf_counter()
    scene = preprocess_scene(record, config)
    summary = write_scene(
        store,
        scene,
        source_hash=source_hash,
        config_hash=hashing.config_hash(config),
        code_version=hashing.code_version(),
        split=split,
        extra_timings={"read_and_hash": hashed - start},
        started_at=start,
    )
    total = summary["timings"]["total"]
    log.info("scene %s: %d frames committed in %.1f s", scene_id, scene.num_frames, total)
    return {
        "scene_id": scene_id,
        "status": "done",
        "frames": summary["frames"],
        "seconds": total,
        "path": summary["path"],
    }
