"""The SQL store's sessions table: admission (quota and slots, checked and taken in one serialised
transaction), compare-and-set updates, and the reads the API, the reaper and the metrics make.

A mixin of ``SqlStore`` (``openrr.store.sql``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from openrr.domain.session import Session, Size, Status
from openrr.store.base import Admission
from openrr.store.concurrency import admission, compare_and_set
from openrr.store.rows import holds_server, session_from, session_row, utc
from openrr.store.tables import sessions


class SessionQueries:
    _engine: AsyncEngine

    async def insert_session(
        self,
        session: Session,
        *,
        max_active_per_account: int | None = None,
        size_slots: int | None = None,
    ) -> Admission:
        insert = sessions.insert().values(session_row(session))
        limited = max_active_per_account is not None or size_slots is not None
        try:
            if not limited or not holds_server(session):
                async with self._engine.begin() as conn:
                    await conn.execute(insert)
                return Admission.INSERTED
            async with admission(self._engine) as conn:
                verdict = await _admit(conn, session, max_active_per_account, size_slots)
                if verdict is Admission.INSERTED:
                    await conn.execute(insert)
                return verdict
        except sa.exc.IntegrityError:
            # The id was taken after the check (a plain insert is not serialised with admissions) or,
            # without a limit, before: either way it exists. A missing account is a bug, not a race.
            if await self.get_session(session.account_id, session.id) is None:
                raise
            return Admission.EXISTS

    async def count_holding_by_size(self) -> dict[str, int]:
        query = (
            sa.select(sessions.c.size, sa.func.count())
            .where(sessions.c.holds_server == sa.true())
            .group_by(sessions.c.size)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        counts = {size.value: 0 for size in Size}
        for size, n in rows:
            counts[str(size)] = int(n)
        return counts

    async def get_session(self, account_id: str, session_id: str) -> Session | None:
        query = sessions.select().where(sessions.c.account_id == account_id, sessions.c.id == session_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return session_from(row._mapping) if row else None

    async def update_session(self, session: Session) -> Session:
        values = session_row(session)
        await compare_and_set(self._engine, sessions, session.account_id, session.id, session.version, values)
        return session_from(values)

    async def list_sessions(
        self,
        account_id: str,
        *,
        statuses: Sequence[Status],
        after_id: str | None = None,
        limit: int = 100,
    ) -> Sequence[Session]:
        query = sessions.select().where(
            sessions.c.account_id == account_id, sessions.c.status.in_([s.value for s in statuses])
        )
        if after_id is not None:
            query = query.where(sessions.c.id > after_id)
        query = query.order_by(sessions.c.id).limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [session_from(r._mapping) for r in rows]

    async def sessions_needing_attention(self) -> Sequence[Session]:
        active = [Status.STARTING.value, Status.READY.value]
        query = sessions.select().where(
            sa.or_(sessions.c.status.in_(active), sessions.c.host_released == sa.false())
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [session_from(r._mapping) for r in rows]

    async def purge_ended_before(self, cutoff: dt.datetime) -> int:
        stmt = sessions.delete().where(
            sessions.c.ended_at.is_not(None),
            sessions.c.ended_at < utc(cutoff),
            sessions.c.host_released == sa.true(),
        )
        async with self._engine.begin() as conn:
            result = await conn.execute(stmt)
        return int(result.rowcount or 0)

    async def count_sessions_by_status(self) -> dict[Status, int]:
        query = sa.select(sessions.c.status, sa.func.count()).group_by(sessions.c.status)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        counts = {s: 0 for s in Status}
        for status, n in rows:
            counts[Status(status)] = int(n)
        return counts


async def _admit(
    conn: AsyncConnection, session: Session, max_active_per_account: int | None, size_slots: int | None
) -> Admission:
    """The verdict on ``session``, read inside an admission transaction (``concurrency.admission``)."""
    taken = await conn.execute(
        sa.select(sa.literal(1)).where(
            sessions.c.account_id == session.account_id, sessions.c.id == session.id
        )
    )
    if taken.first() is not None:
        return Admission.EXISTS
    holding = sessions.c.holds_server == sa.true()
    if max_active_per_account is not None:
        query = sa.select(sa.func.count()).where(sessions.c.account_id == session.account_id, holding)
        if int((await conn.execute(query)).scalar_one()) >= max_active_per_account:
            return Admission.OVER_QUOTA
    if size_slots is not None:
        query = sa.select(sa.func.count()).where(sessions.c.size == session.size.value, holding)
        if int((await conn.execute(query)).scalar_one()) >= size_slots:
            return Admission.NO_CAPACITY
    return Admission.INSERTED
