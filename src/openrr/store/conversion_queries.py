"""The SQL store's conversions table: admission (a per-account cap on pending conversions),
compare-and-set updates, and the reads the API and the conversion queue make.

A mixin of ``SqlStore`` (``openrr.store.sql``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from openrr.domain.conversion import Conversion, ConversionStatus
from openrr.store.base import Admission
from openrr.store.concurrency import admission, compare_and_set
from openrr.store.rows import conversion_from, conversion_row, utc
from openrr.store.tables import conversions


class ConversionQueries:
    _engine: AsyncEngine

    async def insert_conversion(
        self, conversion: Conversion, *, max_pending_per_account: int | None = None
    ) -> Admission:
        insert = conversions.insert().values(conversion_row(conversion))
        try:
            if max_pending_per_account is None:
                async with self._engine.begin() as conn:
                    await conn.execute(insert)
                return Admission.INSERTED
            async with admission(self._engine) as conn:
                taken = await conn.execute(
                    sa.select(sa.literal(1)).where(
                        conversions.c.account_id == conversion.account_id, conversions.c.id == conversion.id
                    )
                )
                if taken.first() is not None:
                    return Admission.EXISTS
                pending = await conn.scalar(
                    sa.select(sa.func.count()).where(
                        conversions.c.account_id == conversion.account_id,
                        conversions.c.status.in_(
                            [ConversionStatus.NOT_STARTED.value, ConversionStatus.RUNNING.value]
                        ),
                    )
                )
                if int(pending or 0) >= max_pending_per_account:
                    return Admission.OVER_QUOTA
                await conn.execute(insert)
                return Admission.INSERTED
        except sa.exc.IntegrityError:
            return Admission.EXISTS

    async def get_conversion(self, account_id: str, conversion_id: str) -> Conversion | None:
        query = conversions.select().where(
            conversions.c.account_id == account_id, conversions.c.id == conversion_id
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return conversion_from(row._mapping) if row else None

    async def update_conversion(self, conversion: Conversion) -> Conversion:
        values = conversion_row(conversion)
        await compare_and_set(
            self._engine, conversions, conversion.account_id, conversion.id, conversion.version, values
        )
        return conversion_from(values)

    async def list_conversions(
        self, account_id: str, *, after_id: str | None = None, limit: int = 100
    ) -> Sequence[Conversion]:
        query = conversions.select().where(conversions.c.account_id == account_id)
        if after_id is not None:
            query = query.where(conversions.c.id > after_id)
        query = query.order_by(conversions.c.id).limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [conversion_from(r._mapping) for r in rows]

    async def conversions_with_status(
        self, statuses: Sequence[ConversionStatus], *, limit: int = 100
    ) -> Sequence[Conversion]:
        query = (
            conversions.select()
            .where(conversions.c.status.in_([s.value for s in statuses]))
            .order_by(conversions.c.created_at, conversions.c.account_id, conversions.c.id)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [conversion_from(r._mapping) for r in rows]

    async def purge_conversions_ended_before(self, cutoff: dt.datetime) -> int:
        stmt = conversions.delete().where(
            conversions.c.ended_at.is_not(None), conversions.c.ended_at < utc(cutoff)
        )
        async with self._engine.begin() as conn:
            result = await conn.execute(stmt)
        return int(result.rowcount or 0)
