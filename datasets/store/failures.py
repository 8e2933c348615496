"""Failure records: `STORE/failures/<scene_id>.json`, one per scene whose last attempt failed.

Written by the flow process (never by workers) so that a killed worker cannot leave a torn record; each
record is replaced atomically (a temporary file renamed, or one PUT on an object store).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from datasets.store.backend import StoreRef, backend_for, iter_json_files
from datasets.store.schema import FAILURES_DIRNAME, failure_key


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


def write_failure(store: StoreRef, scene_id: str, error: str, reason: str, attempt: int = 1) -> FailureRecord:
    record = FailureRecord(scene_id=scene_id, error=error, reason=reason, attempt=attempt, time=utc_now())
    backend_for(store).write_file(failure_key(scene_id), json.dumps(asdict(record), indent=1).encode())
    return record


def clear_failure(store: StoreRef, scene_id: str) -> None:
    backend_for(store).delete_file(failure_key(scene_id))


def has_failure(store: StoreRef, scene_id: str) -> bool:
    return backend_for(store).read_file(failure_key(scene_id)) is not None


def read_failures(store: StoreRef) -> dict[str, FailureRecord]:
    """Every failure record, keyed by scene id; unreadable records are skipped (each is replaced
    atomically, so none should be)."""
    records: dict[str, FailureRecord] = {}
    for _, data in iter_json_files(backend_for(store), FAILURES_DIRNAME):
        try:
            record = json.loads(data)
            records[record["scene_id"]] = FailureRecord(**record)
        except (ValueError, KeyError, TypeError):
            continue
    return records
