"""The SQL store's models table: the model library of each account (``openrr.domain.library``).

A mixin of ``SqlStore`` (``openrr.store.sql``). Every query names the account: no call reaches another
account's models, whatever id it is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from openrr.domain.library import LibraryModel
from openrr.store.rows import utc
from openrr.store.tables import models


def model_row(m: LibraryModel) -> dict[str, Any]:
    return {
        "account_id": m.account_id,
        "id": m.id,
        "name": m.name,
        "entry": m.entry,
        "files": m.files,
        "size": m.size,
        "conversion_id": m.conversion_id,
        "created_at": utc(m.created_at),
        "status": m.status,
        "error_code": m.error_code,
        "error_message": m.error_message,
    }


def model_from(r: Mapping[Any, Any]) -> LibraryModel:
    created = utc(r["created_at"])
    assert created is not None  # NOT NULL
    return LibraryModel(
        account_id=r["account_id"],
        id=r["id"],
        name=r["name"],
        entry=r["entry"],
        files=r["files"],
        size=r["size"],
        conversion_id=r["conversion_id"],
        created_at=created,
        status=r["status"],
        error_code=r["error_code"],
        error_message=r["error_message"],
    )


def _one(account_id: str, model_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(models.c.account_id == account_id, models.c.id == model_id)


class ModelQueries:
    _engine: AsyncEngine

    async def insert_model(self, model: LibraryModel) -> bool:
        try:
            async with self._engine.begin() as conn:
                await conn.execute(models.insert().values(model_row(model)))
        except sa.exc.IntegrityError:
            return False
        return True

    async def get_model(self, account_id: str, model_id: str) -> LibraryModel | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(models.select().where(_one(account_id, model_id)))).first()
        return model_from(row._mapping) if row else None

    async def list_models(self, account_id: str) -> Sequence[LibraryModel]:
        query = models.select().where(models.c.account_id == account_id).order_by(models.c.created_at)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [model_from(r._mapping) for r in rows]

    async def library_usage(self, account_id: str) -> tuple[int, int]:
        total = sa.func.coalesce(sa.func.sum(models.c.size), 0)
        query = sa.select(sa.func.count(), total).where(models.c.account_id == account_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).one()
        return int(row[0] or 0), int(row[1] or 0)

    async def rename_model(self, account_id: str, model_id: str, name: str) -> bool | None:
        try:
            async with self._engine.begin() as conn:
                stmt = models.update().where(_one(account_id, model_id)).values(name=name)
                result = await conn.execute(stmt)
        except sa.exc.IntegrityError:
            return False
        return True if result.rowcount else None

    async def end_model(
        self, account_id: str, model_id: str, status: str, error_code: str | None, error_message: str | None
    ) -> None:
        stmt = (
            models.update()
            .where(_one(account_id, model_id))
            .values(status=status, error_code=error_code, error_message=error_message)
        )
        async with self._engine.begin() as conn:
            await conn.execute(stmt)

    async def delete_model(self, account_id: str, model_id: str) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(models.delete().where(_one(account_id, model_id)))
        return bool(result.rowcount)
