"""A fresh PREFECT_HOME starts from the cached empty database; other homes and databases are left alone."""

from __future__ import annotations

import sqlite3

import pytest

from flows import prefect_home_template as template
from flows.cache_dir import CACHE_ENV


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    for name in template.DATABASE_URL_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "cache"


def _server_home(home):
    """What a Prefect server leaves in a home it started on: a WAL-mode database and the memo file."""
    home.mkdir(parents=True)
    db = sqlite3.connect(home / template.DATABASE)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE alembic_version (version_num TEXT)")
    db.execute("INSERT INTO alembic_version VALUES ('head')")
    db.commit()
    (home / template.MEMO).write_text("block_auto_registration = 'hash'\n")
    return db  # left open: the server still runs when the template is taken


def test_first_fresh_home_saves_the_template_and_the_next_starts_from_it(cache, tmp_path):
    first = tmp_path / "first"
    assert template.is_fresh(first)
    assert not template.seed_home(first), "no template yet"
    server_db = _server_home(first)
    assert template.save_template(first)
    server_db.close()

    second = tmp_path / "second"
    assert template.seed_home(second)
    assert not template.is_fresh(second)
    copied = sqlite3.connect(second / template.DATABASE)
    assert copied.execute("SELECT version_num FROM alembic_version").fetchall() == [("head",)]
    assert (second / template.MEMO).read_text() == (first / template.MEMO).read_text()


def test_an_existing_template_is_kept(cache, tmp_path):
    _server_home(tmp_path / "a").close()
    assert template.save_template(tmp_path / "a")
    _server_home(tmp_path / "b").close()
    assert not template.save_template(tmp_path / "b")


def test_homes_with_a_database_or_another_database_url_are_left_alone(cache, tmp_path, monkeypatch):
    _server_home(tmp_path / "a").close()
    template.save_template(tmp_path / "a")

    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / template.DATABASE).write_bytes(b"")
    assert not template.seed_home(existing) and (existing / template.DATABASE).read_bytes() == b""

    profiled = tmp_path / "profiled"
    profiled.mkdir()
    (profiled / "profiles.toml").write_text(
        '[profiles.x]\nPREFECT_API_DATABASE_CONNECTION_URL = "postgresql://h/db"\n'
    )
    assert not template.seed_home(profiled) and not (profiled / template.DATABASE).exists()

    monkeypatch.setenv("PREFECT_SERVER_DATABASE_CONNECTION_URL", "postgresql+asyncpg://h/db")
    assert not template.seed_home(tmp_path / "postgres")
    assert not (tmp_path / "postgres" / template.DATABASE).exists()


def test_a_home_without_the_memo_file_is_not_a_template(cache, tmp_path):
    server_db = _server_home(tmp_path / "a")
    (tmp_path / "a" / template.MEMO).unlink()  # the server has not finished registering its blocks
    assert not template.save_template(tmp_path / "a")
    server_db.close()
    assert not cache.exists() or not any(cache.iterdir())
