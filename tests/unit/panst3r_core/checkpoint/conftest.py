"""The parity fixture (tiny official-format checkpoint) from the shared `shared/` folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from shared_fixtures import require_parity_fixture


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    return require_parity_fixture()
