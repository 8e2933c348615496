"""Locates the parity fixture (tiny official-format checkpoint) in the sibling `shared/` folder."""

from __future__ import annotations

from pathlib import Path

import pytest

PARITY_DIR = (Path(__file__).resolve().parents[4] / ".." / "shared" / "fixtures" / "parity").resolve()


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    if not (PARITY_DIR / "tiny_v1.pth").is_file():
        pytest.skip(f"parity fixture not found at {PARITY_DIR} (needs the shared/ folder next to the repo)")
    return PARITY_DIR
