"""The per-user cache folder of the pipeline: $PANST3R_CACHE_DIR, else $XDG_CACHE_HOME/panst3r or
~/.cache/panst3r. It holds things that speed a run up and may be deleted at any time (the empty Prefect
database template, the records of warm workers)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "PANST3R_CACHE_DIR"


def cache_base() -> Path:
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "panst3r"
