"""A fresh PREFECT_HOME starts from a copy of an empty, migrated Prefect database.

Why: a Prefect server on a new SQLite database spends most of its boot creating the schema (about 100
migrations) and registering the built-in block types: 10-14 s on a loaded 2-core machine, against about
5 s on an existing database. Every fresh home (a new project folder, every test) would pay it again. The
first server started on a fresh home leaves a copy of its database, taken as soon as it answers and before
any run is recorded, in a per-user cache keyed by the Prefect version; later fresh homes start from that
copy, so their server only checks that the schema is current.

Only the default SQLite database inside PREFECT_HOME is touched: a home that has a database already, or a
configured database URL (e.g. PostgreSQL), is left alone.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import tempfile
from importlib.metadata import version
from pathlib import Path

from flows.cache_dir import cache_base

log = logging.getLogger(__name__)

DATABASE = "prefect.db"
# Prefect's record that the built-in block types are registered; with it the copy skips that step too.
MEMO = "memo_store.toml"
DATABASE_URL_SETTINGS = ("PREFECT_SERVER_DATABASE_CONNECTION_URL", "PREFECT_API_DATABASE_CONNECTION_URL")


def template_dir() -> Path:
    """Where the copy of this Prefect version lives (in flows.cache_dir's folder)."""
    return cache_base() / f"prefect-{version('prefect')}-home"


def uses_own_database(home: Path) -> bool:
    """True when the server of `home` keeps its state in `home`/prefect.db (no other database configured)."""
    if any(os.environ.get(name) for name in DATABASE_URL_SETTINGS):
        return False
    profiles = home / "profiles.toml"
    return not (profiles.is_file() and "DATABASE_CONNECTION_URL" in profiles.read_text(errors="replace"))


def is_fresh(home: Path) -> bool:
    """A home whose server would create its database from scratch."""
    return uses_own_database(home) and not (home / DATABASE).exists()


def seed_home(home: Path) -> bool:
    """Copy the template into a fresh `home`; True if it did (False: not fresh, or no template yet)."""
    template = template_dir()
    if not is_fresh(home) or not (template / DATABASE).is_file():
        return False
    home.mkdir(parents=True, exist_ok=True)
    for name in (MEMO, DATABASE):  # the database last: its presence is what marks the home as seeded
        _copy_atomically(template / name, home / name)
    log.debug("seeded %s from the empty Prefect database in %s", home, template)
    return True


def save_template(home: Path) -> bool:
    """Keep a copy of `home`'s new database as the template, unless one exists or the home is incomplete.
    Call it once the server answers, before any run is recorded. Several processes may race: one wins."""
    template = template_dir()
    if template.exists() or not (home / DATABASE).is_file() or not (home / MEMO).is_file():
        return False
    template.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{template.name}-", dir=template.parent))
    try:
        _backup(home / DATABASE, staging / DATABASE)
        shutil.copyfile(home / MEMO, staging / MEMO)
        staging.rename(template)  # atomic: a reader sees no template or a complete one
    except OSError as exc:  # another process won the race, or the cache is not writable: no harm done
        log.debug("no Prefect home template saved in %s: %s", template, exc)
        shutil.rmtree(staging, ignore_errors=True)
        return False
    return True


def _backup(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database (the server writes it in WAL mode; a file copy could
    miss what the WAL holds)."""
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def _copy_atomically(source: Path, target: Path) -> None:
    partial = target.with_name(f".{target.name}.partial")
    shutil.copyfile(source, partial)
    os.replace(partial, target)
