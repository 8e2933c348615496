"""The helper that locates the shared fixtures (tests/shared_fixtures.py)."""

from __future__ import annotations

import pytest
from shared_fixtures import PARITY_ENV, parity_fixture_dir


def _parity_at(folder):
    folder.mkdir(parents=True)
    (folder / "tiny_v1.pth").write_bytes(b"")
    return folder


def test_walks_up_from_the_repository_to_a_shared_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(PARITY_ENV, raising=False)
    repo = tmp_path / "work" / "main"
    repo.mkdir(parents=True)
    assert parity_fixture_dir(repo) is None
    (tmp_path / "work" / "shared" / "fixtures" / "parity").mkdir(parents=True)  # no checkpoint: not it
    assert parity_fixture_dir(repo) is None
    sibling = _parity_at(tmp_path / "shared" / "fixtures" / "parity")
    assert parity_fixture_dir(repo) == sibling
    nearer = tmp_path / "work" / "shared" / "fixtures" / "parity"
    (nearer / "tiny_v1.pth").write_bytes(b"")
    assert parity_fixture_dir(repo) == nearer


def test_environment_override_wins_only_when_it_holds_the_fixture(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    walked = _parity_at(tmp_path / "shared" / "fixtures" / "parity")
    monkeypatch.setenv(PARITY_ENV, str(tmp_path / "empty"))
    assert parity_fixture_dir(repo) == walked
    copied = _parity_at(tmp_path / "copied")
    monkeypatch.setenv(PARITY_ENV, str(copied))
    assert parity_fixture_dir(repo) == copied


def test_the_real_fixture_is_found_or_reported():
    found = parity_fixture_dir()
    if found is None:
        pytest.skip("no shared/ folder next to this checkout")
    assert (found / "tiny_v1.pth").is_file()
