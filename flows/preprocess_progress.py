"""Progress events of the preprocess flow, for listeners in the flow's process (the CLI's progress bar)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# Progress listeners (the CLI's progress bar); called in the flow process only.
_listeners: list[Callable[[dict[str, Any]], None]] = []


@contextmanager
def progress_listener(callback: Callable[[dict[str, Any]], None]) -> Iterator[None]:
    """Receive `{"event": "planned", "total", "skipped"}` then `{"event": "scene", "scene_id", "status", ...}`."""
    _listeners.append(callback)
    try:
        yield
    finally:
        _listeners.remove(callback)


def emit(event: dict[str, Any]) -> None:
    for callback in list(_listeners):
        callback(event)
