"""Alembic migrations, run programmatically by ``open_store`` (no alembic.ini needed by operators)."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

_HERE = Path(__file__).resolve().parent
# Any constant will do; it only has to be the same for every replica.
_PG_MIGRATION_LOCK = 72_501_113


def _config(connection: sa.Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_HERE))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(sync_url: str, revision: str = "head") -> None:
    """Upgrade the schema at ``sync_url`` to ``revision``. Safe to call from several processes at once."""
    engine = sa.create_engine(sync_url, poolclass=sa.pool.NullPool)
    try:
        with _sqlite_file_lock(engine.url), engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            command.upgrade(_config(conn), revision)
    finally:
        engine.dispose()


@contextlib.contextmanager
def _sqlite_file_lock(url: sa.URL) -> Iterator[None]:
    """For a SQLite file, an exclusive lock on a sibling file while migrating (PostgreSQL has its own)."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
