"""The SQL store's account-side tables: accounts and their key hashes, linked storage accounts, and the
control plane's token signing keys.

A mixin of ``SqlStore`` (``openrr.store.sql``), apart from the session and conversion queries: these
tables change rarely, by an operator or at start-up, and carry no admission control.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from openrr.domain.account import Account, LinkedStorage, SigningKey
from openrr.store.rows import account_from, signing_key_from, utc
from openrr.store.tables import accounts, linked_storage, signing_keys

# Serialises signing_key's read-or-insert across replicas on PostgreSQL (SQLite has a single writer anyway).
_PG_SIGNING_KEY_LOCK = 72_501_114


class AccountQueries:
    _engine: AsyncEngine

    # ---- accounts ---------------------------------------------------------------------------------------
    async def add_account(self, account: Account) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                accounts.insert().values(
                    id=account.id,
                    name=account.name,
                    created_at=utc(account.created_at),
                    primary_key_hash=account.primary_key_hash,
                    secondary_key_hash=account.secondary_key_hash,
                )
            )

    async def get_account(self, account_id: str) -> Account | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(accounts.select().where(accounts.c.id == account_id))).first()
        return account_from(row._mapping) if row else None

    async def list_accounts(self) -> Sequence[Account]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(accounts.select().order_by(accounts.c.created_at))).all()
        return [account_from(r._mapping) for r in rows]

    async def set_account_key_hash(
        self, account_id: str, slot: str, key_hash: str, *, tokens_not_before: dt.datetime | None = None
    ) -> None:
        column = {"primary": "primary_key_hash", "secondary": "secondary_key_hash"}[slot]
        values: dict[str, Any] = {column: key_hash}
        if tokens_not_before is not None:
            values["tokens_not_before"] = utc(tokens_not_before)
        async with self._engine.begin() as conn:
            await conn.execute(accounts.update().where(accounts.c.id == account_id).values(values))

    # ---- linked storage ---------------------------------------------------------------------------------
    async def link_storage(self, link: LinkedStorage) -> None:
        t = linked_storage
        async with self._engine.begin() as conn:
            # One transaction: a concurrent reader sees the old link or the new one, never none.
            await conn.execute(t.delete().where(t.c.account_id == link.account_id, t.c.name == link.name))
            await conn.execute(
                t.insert().values(
                    account_id=link.account_id,
                    name=link.name,
                    account_key=link.key,
                    endpoint=link.endpoint,
                    created_at=utc(link.created_at),
                )
            )

    async def unlink_storage(self, account_id: str, name: str) -> bool:
        t = linked_storage
        async with self._engine.begin() as conn:
            result = await conn.execute(t.delete().where(t.c.account_id == account_id, t.c.name == name))
        return bool(result.rowcount)

    async def linked_storage(self, account_id: str) -> Sequence[LinkedStorage]:
        t = linked_storage
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(t.select().where(t.c.account_id == account_id).order_by(t.c.name))
            ).all()
        found = []
        for row in rows:
            created = utc(row.created_at)
            assert created is not None
            found.append(LinkedStorage(row.account_id, row.name, row.account_key, row.endpoint, created))
        return found

    # ---- signing keys ---------------------------------------------------------------------------------
    async def signing_key(self, make: SigningKey) -> SigningKey:
        query = signing_keys.select().order_by(signing_keys.c.created_at.desc()).limit(1)
        # Insert only into an empty table, in one statement. On SQLite that statement opens the write
        # transaction, so it and the read after it see every committed key; on PostgreSQL (READ COMMITTED)
        # two such statements could both see the table empty, so an advisory lock orders them.
        candidate = sa.select(
            sa.literal(make.kid, signing_keys.c.kid.type),
            sa.literal(make.private_pem, signing_keys.c.private_pem.type),
            sa.literal(utc(make.created_at), signing_keys.c.created_at.type),
        ).where(~sa.exists().select_from(signing_keys))
        insert = signing_keys.insert().from_select(["kid", "private_pem", "created_at"], candidate)
        async with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_SIGNING_KEY_LOCK)))
            await conn.execute(insert)
            row = (await conn.execute(query)).first()
        assert row is not None
        return signing_key_from(row._mapping)

    async def signing_keys(self) -> Sequence[SigningKey]:
        query = signing_keys.select().order_by(signing_keys.c.created_at.desc(), signing_keys.c.kid)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [signing_key_from(r._mapping) for r in rows]

    async def add_signing_key(self, key: SigningKey) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                signing_keys.insert().values(
                    kid=key.kid, private_pem=key.private_pem, created_at=utc(key.created_at)
                )
            )

    async def drop_signing_keys(self, keep: str, created_before: dt.datetime | None = None) -> int:
        delete = signing_keys.delete().where(signing_keys.c.kid != keep)
        if created_before is not None:
            delete = delete.where(signing_keys.c.created_at < utc(created_before))
        async with self._engine.begin() as conn:
            return (await conn.execute(delete)).rowcount or 0
