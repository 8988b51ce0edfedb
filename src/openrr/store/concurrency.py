"""How concurrent writers of one database are kept apart: compare-and-set on a row's version, and
admissions (count, then insert) that run one at a time across every replica.

Apart because sessions and conversions both rely on them, and because they are where the two dialects
differ most (PostgreSQL's advisory locks, SQLite's single writer).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from openrr.store.base import StaleWrite

# Serialises session and conversion admissions (count, then insert) across replicas on PostgreSQL.
_PG_ADMISSION_LOCK = 72_501_115


@contextlib.asynccontextmanager
async def admission(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction that no other admission on this database runs beside, until it commits."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # READ COMMITTED reads see every admission committed before the lock was granted.
            await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_ADMISSION_LOCK)))
        else:
            # pysqlite opens a deferred transaction only at the first write, so the counts would be
            # read outside any transaction: two replicas could both count 9 of 10 and both insert.
            # BEGIN IMMEDIATE takes the database's write lock first (waiting out the busy timeout), so
            # the counts and the insert see and hold the latest state. SQLAlchemy's begin() emits
            # nothing for pysqlite, and the driver leaves an explicit BEGIN alone and commits it.
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
        yield conn


async def compare_and_set(
    engine: AsyncEngine, table: sa.Table, account_id: str, id_: str, version: int, values: dict[str, Any]
) -> None:
    """Write ``values`` (with the next version) only if the row still has ``version``; else StaleWrite."""
    values["version"] = version + 1
    stmt = (
        table.update()
        .where(table.c.account_id == account_id, table.c.id == id_, table.c.version == version)
        .values(values)
    )
    async with engine.begin() as conn:
        result = await conn.execute(stmt)
    if result.rowcount != 1:
        raise StaleWrite(f"{table.name.rstrip('s')} {id_} changed concurrently")
