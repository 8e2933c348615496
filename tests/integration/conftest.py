"""Fixtures of the integration tests."""

from __future__ import annotations

import pytest
from _preprocess_support import start_prefect_server


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """(api_url, PREFECT_HOME) of one Prefect server shared by the session (starting one costs 5-10 s)."""
    home = tmp_path_factory.mktemp("prefect_home")
    server = start_prefect_server(home)
    try:
        yield server.api_url, home
    finally:
        server.stop()
