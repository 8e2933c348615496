"""Failure records: `STORE/failures/<scene_id>.json`, one per scene whose last attempt failed.

Written by the flow process (never by workers) so that a killed worker cannot leave a torn record; each
file is written to a temporary name and renamed.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from datasets.store.schema import StoreLayout


@dataclass(frozen=True)
class FailureRecord:
    scene_id: str
    error: str
    """The exception type, e.g. `ValueError`."""
    reason: str
    """The one-line message shown in `status`."""
    attempt: int
    time: str
    """ISO-8601 UTC time of the failure."""


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def write_failure(
    layout: StoreLayout, scene_id: str, error: str, reason: str, attempt: int = 1
) -> FailureRecord:
    record = FailureRecord(scene_id=scene_id, error=error, reason=reason, attempt=attempt, time=utc_now())
    layout.failures_dir.mkdir(parents=True, exist_ok=True)
    target = layout.failure_path(scene_id)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(asdict(record), indent=1))
    os.replace(tmp, target)
    return record


def clear_failure(layout: StoreLayout, scene_id: str) -> None:
    layout.failure_path(scene_id).unlink(missing_ok=True)


def read_failures(layout: StoreLayout) -> dict[str, FailureRecord]:
    """Every failure record, keyed by scene id; unreadable files are skipped (a rename is atomic, so none
    should be)."""
    records: dict[str, FailureRecord] = {}
    if not layout.failures_dir.is_dir():
        return records
    for path in sorted(layout.failures_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text())
            records[data["scene_id"]] = FailureRecord(**data)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return records
