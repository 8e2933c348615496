"""Where the tests find the shared fixtures: `shared/fixtures/...` found by walking up from the repository
root (normally the `shared/` folder next to the checkout), or $PANST3R_PARITY_DIR for the parity fixture
(GPU machines may get it copied elsewhere).

Any test can `import shared_fixtures`: pytest puts this folder on sys.path when it loads tests/conftest.py
(a rootdir conftest outside a package, default "prepend" import mode).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PARITY_ENV = "PANST3R_PARITY_DIR"
PARITY_MARKER = "tiny_v1.pth"  # the file every parity test needs; a folder without it does not count
PARITY_MISSING = (
    "parity fixture shared/fixtures/parity not found (needs the shared/ folder next to the repository, "
    f"or ${PARITY_ENV})"
)


def parity_fixture_dir(start: Path = REPO_ROOT) -> Path | None:
    """$PANST3R_PARITY_DIR when it holds the fixture, else the first `shared/fixtures/parity` holding it in
    `start` or one of its parents; None when there is none."""
    override = os.environ.get(PARITY_ENV)
    if override and (Path(override) / PARITY_MARKER).is_file():
        return Path(override)
    for base in (start, *start.parents):
        candidate = base / "shared" / "fixtures" / "parity"
        if (candidate / PARITY_MARKER).is_file():
            return candidate
    return None


def require_parity_fixture() -> Path:
    """The parity fixture folder, or skip the calling test with the reason."""
    found = parity_fixture_dir()
    if found is None:
        pytest.skip(PARITY_MISSING)
    return found
