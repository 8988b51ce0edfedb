"""The SQL store's leader leases: which replica runs a job that must run in one replica only (the reaper).

A mixin of ``SqlStore`` (``openrr.store.sql``), apart because a lease is taken in one upsert statement
whose dialect-specific form (``ON CONFLICT … DO UPDATE … WHERE``) deserves its own reading.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from openrr.store.rows import utc
from openrr.store.tables import leases


class LeaseQueries:
    _engine: AsyncEngine

    async def try_lease(self, name: str, holder: str, ttl: dt.timedelta, now: dt.datetime) -> bool:
        if ttl <= dt.timedelta(0):
            raise ValueError(f"a lease needs a positive ttl, not {ttl}")
        at = utc(now)
        assert at is not None
        insert_ = postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert
        ins = insert_(leases).values(name=name, holder=holder, acquired_at=at, expires_at=at + ttl)
        # One statement: insert the lease, or take the existing row over only if it is ours or expired.
        # PostgreSQL re-checks the WHERE against the row as a concurrent winner left it (the row is locked
        # first); SQLite runs one writer at a time. RETURNING yields a row only if this statement wrote
        # one (rowcount is not reported for an INSERT through the asyncio psycopg driver).
        stmt = ins.on_conflict_do_update(
            index_elements=[leases.c.name],
            set_={
                "holder": ins.excluded.holder,
                "expires_at": ins.excluded.expires_at,
                # a renewal keeps the time the holder first took the lease
                "acquired_at": sa.case(
                    (leases.c.holder == ins.excluded.holder, leases.c.acquired_at),
                    else_=ins.excluded.acquired_at,
                ),
            },
            where=sa.or_(leases.c.holder == holder, leases.c.expires_at <= at),
        ).returning(leases.c.holder)
        async with self._engine.begin() as conn:
            written = (await conn.execute(stmt)).first()
        return written is not None

    async def release_lease(self, name: str, holder: str) -> None:
        stmt = leases.delete().where(leases.c.name == name, leases.c.holder == holder)
        async with self._engine.begin() as conn:
            await conn.execute(stmt)

    async def lease_holder(self, name: str, now: dt.datetime) -> str | None:
        query = sa.select(leases.c.holder).where(leases.c.name == name, leases.c.expires_at > utc(now))
        async with self._engine.connect() as conn:
            holder = (await conn.execute(query)).scalar_one_or_none()
        return None if holder is None else str(holder)
