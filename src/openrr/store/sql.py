"""SQL store on SQLAlchemy (asyncio): SQLite in WAL mode by default, PostgreSQL for real deployments.

The schema is owned by Alembic (store/migrations); ``open_store`` upgrades it to head before use, under an
advisory lock on PostgreSQL so that replicas starting together migrate once.

``SqlStore`` is assembled from one mixin per group of tables, each in a module of its own:
``account_queries`` (accounts, linked storage, signing keys), ``session_queries``, ``conversion_queries``,
``lease_queries`` and ``model_queries`` (the model library). Rows map to records in ``rows``;
compare-and-set and serialised admissions are in ``concurrency``; a SQLite file's set-up is in
``sqlite_setup``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from openrr.errors import InvalidInput
from openrr.private import private_sqlite
from openrr.store import migrations
from openrr.store.account_queries import AccountQueries
from openrr.store.conversion_queries import ConversionQueries
from openrr.store.lease_queries import LeaseQueries
from openrr.store.model_queries import ModelQueries
from openrr.store.session_queries import SessionQueries
from openrr.store.sqlite_setup import is_file, sqlite_pragmas, use_wal


class SqlStore(AccountQueries, SessionQueries, ConversionQueries, LeaseQueries, ModelQueries):
    """The ``Store`` protocol (``openrr.store.base``) on one SQLAlchemy engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    async def close(self) -> None:
        await self._engine.dispose()


def driver_urls(store_url: str) -> tuple[str, str]:
    """Return (async URL, sync URL) for a user-facing ``sqlite:///…`` or ``postgresql://…`` URL."""
    try:
        url = make_url(store_url)
    except (sa.exc.ArgumentError, ValueError):  # not a URL at all; a port that is not a number
        raise InvalidInput(f"Cannot parse the store URL {store_url!r}.") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        return (
            url.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False),
            url.set(drivername="sqlite").render_as_string(hide_password=False),
        )
    if backend in ("postgresql", "postgres"):
        rendered = url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        return rendered, rendered
    raise InvalidInput(f"Unsupported store URL scheme {url.drivername!r}: use sqlite:/// or postgresql://.")


async def open_store(store_url: str, *, migrate: bool = True) -> SqlStore:
    """Open the store at ``store_url``, upgrading its schema to the newest revision first."""
    async_url, sync_url = driver_urls(store_url)
    parsed = sa.engine.make_url(sync_url)
    if parsed.get_backend_name() == "sqlite":
        private_sqlite(parsed.database or "")  # 0600 before the first connection creates it
    if migrate:
        # Alembic is synchronous: run it in a thread so a slow migration does not stall the event loop.
        await asyncio.to_thread(migrations.upgrade, sync_url)
    if parsed.get_backend_name() == "sqlite" and is_file(parsed.database):
        await asyncio.to_thread(use_wal, parsed.database or "")
    kwargs: dict[str, Any] = {}
    if async_url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
    engine = create_async_engine(async_url, **kwargs)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine.sync_engine, "connect", sqlite_pragmas)
    return SqlStore(engine)
