"""SQL store on SQLAlchemy (asyncio): SQLite in WAL mode by default, PostgreSQL for real deployments.

The schema is owned by Alembic (store/migrations); ``open_store`` upgrades it to head before use, under an
advisory lock on PostgreSQL so that replicas starting together migrate once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from openrr.domain.session import Endpoint, Session, SessionError, Size, Status
from openrr.errors import InvalidInput
from openrr.store import migrations
from openrr.store.base import (
    Account,
    Conversion,
    ConversionInput,
    ConversionOutput,
    ConversionStatus,
    SigningKey,
    StaleWrite,
)
from openrr.store.tables import accounts, conversions, sessions, signing_keys

# Serialises signing_key's read-or-insert across replicas on PostgreSQL (SQLite has a single writer anyway).
_PG_SIGNING_KEY_LOCK = 72_501_114


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite returns naive datetimes; everything openrr stores is UTC. Used on writes too: SQLite keeps only
    # the wall time of an aware datetime, so one in another zone must be converted before it is stored.
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def driver_urls(store_url: str) -> tuple[str, str]:
    """Return (async URL, sync URL) for a user-facing ``sqlite:///…`` or ``postgresql://…`` URL."""
    try:
        url = make_url(store_url)
    except Exception:
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


def _session_row(s: Session) -> dict[str, Any]:
    ep = s.endpoint
    return {
        "account_id": s.account_id,
        "id": s.id,
        "size": s.size.value,
        "status": s.status.value,
        "lease_minutes": s.lease_minutes,
        "models": list(s.models),
        "created_at": _utc(s.created_at),
        "ready_at": _utc(s.ready_at),
        "ended_at": _utc(s.ended_at),
        "hostname": ep.hostname if ep else None,
        "handshake_port": ep.handshake_port if ep else None,
        "inspector_port": ep.inspector_port if ep else None,
        "teraflops": s.teraflops,
        "error_code": s.error.code if s.error else None,
        "error_message": s.error.message if s.error else None,
        "host_handle": s.host_handle,
        "host_released": s.host_released,
        "version": s.version,
    }


def _session_from(m: Mapping[Any, Any]) -> Session:
    endpoint = None
    if m["hostname"] is not None:
        endpoint = Endpoint(m["hostname"], m["handshake_port"], m["inspector_port"], m["teraflops"] or 0.0)
    error = SessionError(m["error_code"], m["error_message"] or "") if m["error_code"] else None
    created = _utc(m["created_at"])
    assert created is not None
    return Session(
        account_id=m["account_id"],
        id=m["id"],
        size=Size(m["size"]),
        lease_minutes=m["lease_minutes"],
        status=Status(m["status"]),
        created_at=created,
        models=tuple(m["models"] or ()),
        ready_at=_utc(m["ready_at"]),
        ended_at=_utc(m["ended_at"]),
        endpoint=endpoint,
        teraflops=m["teraflops"],
        error=error,
        host_handle=m["host_handle"],
        host_released=bool(m["host_released"]),
        version=m["version"],
    )


def _conversion_row(c: Conversion) -> dict[str, Any]:
    return {
        "account_id": c.account_id,
        "id": c.id,
        "status": c.status.value,
        "settings": {
            "input": {
                "containerUri": c.input.container_uri,
                "blobPrefix": c.input.blob_prefix,
                "assetPath": c.input.asset_path,
            },
            "output": {
                "containerUri": c.output.container_uri,
                "blobPrefix": c.output.blob_prefix,
                "assetFilename": c.output.asset_filename,
            },
        },
        "input_sas": c.input_sas,
        "output_sas": c.output_sas,
        "created_at": _utc(c.created_at),
        "started_at": _utc(c.started_at),
        "ended_at": _utc(c.ended_at),
        "output_uri": c.output_uri,
        "error_code": c.error_code,
        "error_message": c.error_message,
        "attempts": c.attempts,
        "worker": c.worker,
        "heartbeat_at": _utc(c.heartbeat_at),
        "version": c.version,
    }


def _conversion_from(m: Mapping[Any, Any]) -> Conversion:
    settings = m["settings"]
    inp, out = settings["input"], settings["output"]
    created = _utc(m["created_at"])
    assert created is not None
    return Conversion(
        account_id=m["account_id"],
        id=m["id"],
        input=ConversionInput(inp["containerUri"], inp["blobPrefix"], inp["assetPath"]),
        output=ConversionOutput(out["containerUri"], out["blobPrefix"], out["assetFilename"]),
        status=ConversionStatus(m["status"]),
        created_at=created,
        input_sas=m["input_sas"],
        output_sas=m["output_sas"],
        started_at=_utc(m["started_at"]),
        ended_at=_utc(m["ended_at"]),
        output_uri=m["output_uri"],
        error_code=m["error_code"],
        error_message=m["error_message"],
        attempts=m["attempts"],
        worker=m["worker"],
        heartbeat_at=_utc(m["heartbeat_at"]),
        version=m["version"],
    )


def _account_from(m: Mapping[Any, Any]) -> Account:
    created = _utc(m["created_at"])
    assert created is not None
    return Account(m["id"], m["name"], created, m["primary_key_hash"], m["secondary_key_hash"])


class SqlStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    async def close(self) -> None:
        await self._engine.dispose()

    # ---- accounts ---------------------------------------------------------------------------------------
    async def add_account(self, account: Account) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                accounts.insert().values(
                    id=account.id,
                    name=account.name,
                    created_at=_utc(account.created_at),
                    primary_key_hash=account.primary_key_hash,
                    secondary_key_hash=account.secondary_key_hash,
                )
            )

    async def get_account(self, account_id: str) -> Account | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(accounts.select().where(accounts.c.id == account_id))).first()
        return _account_from(row._mapping) if row else None

    async def list_accounts(self) -> Sequence[Account]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(accounts.select().order_by(accounts.c.created_at))).all()
        return [_account_from(r._mapping) for r in rows]

    async def set_account_key_hash(self, account_id: str, slot: str, key_hash: str) -> None:
        column = {"primary": "primary_key_hash", "secondary": "secondary_key_hash"}[slot]
        async with self._engine.begin() as conn:
            await conn.execute(
                accounts.update().where(accounts.c.id == account_id).values({column: key_hash})
            )

    # ---- signing keys ---------------------------------------------------------------------------------
    async def signing_key(self, make: SigningKey) -> SigningKey:
        query = signing_keys.select().order_by(signing_keys.c.created_at.desc()).limit(1)
        # Insert only into an empty table, in one statement. On SQLite that statement opens the write
        # transaction, so it and the read after it see every committed key; on PostgreSQL (READ COMMITTED)
        # two such statements could both see the table empty, so an advisory lock orders them.
        candidate = sa.select(
            sa.literal(make.kid, signing_keys.c.kid.type),
            sa.literal(make.private_pem, signing_keys.c.private_pem.type),
            sa.literal(_utc(make.created_at), signing_keys.c.created_at.type),
        ).where(~sa.exists().select_from(signing_keys))
        insert = signing_keys.insert().from_select(["kid", "private_pem", "created_at"], candidate)
        async with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_SIGNING_KEY_LOCK)))
            await conn.execute(insert)
            row = (await conn.execute(query)).first()
        assert row is not None
        m = row._mapping
        created = _utc(m["created_at"])
        assert created is not None
        return SigningKey(m["kid"], bytes(m["private_pem"]), created)

    # ---- sessions -------------------------------------------------------------------------------------
    async def insert_session(self, session: Session) -> bool:
        try:
            async with self._engine.begin() as conn:
                await conn.execute(sessions.insert().values(_session_row(session)))
        except sa.exc.IntegrityError:
            return False
        return True

    async def _compare_and_set(
        self, table: sa.Table, account_id: str, id_: str, version: int, values: dict[str, Any]
    ) -> None:
        """Write ``values`` (with the next version) only if the row still has ``version``; else StaleWrite."""
        values["version"] = version + 1
        stmt = (
            table.update()
            .where(table.c.account_id == account_id, table.c.id == id_, table.c.version == version)
            .values(values)
        )
        async with self._engine.begin() as conn:
            result = await conn.execute(stmt)
        if result.rowcount != 1:
            raise StaleWrite(f"{table.name.rstrip('s')} {id_} changed concurrently")

    async def get_session(self, account_id: str, session_id: str) -> Session | None:
        query = sessions.select().where(sessions.c.account_id == account_id, sessions.c.id == session_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _session_from(row._mapping) if row else None

    async def update_session(self, session: Session) -> Session:
        values = _session_row(session)
        await self._compare_and_set(sessions, session.account_id, session.id, session.version, values)
        return _session_from(values)

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
        return [_session_from(r._mapping) for r in rows]

    async def sessions_needing_attention(self) -> Sequence[Session]:
        active = [Status.STARTING.value, Status.READY.value]
        query = sessions.select().where(
            sa.or_(sessions.c.status.in_(active), sessions.c.host_released == sa.false())
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_session_from(r._mapping) for r in rows]

    async def purge_ended_before(self, cutoff: dt.datetime) -> int:
        stmt = sessions.delete().where(
            sessions.c.ended_at.is_not(None),
            sessions.c.ended_at < _utc(cutoff),
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

    # ---- conversions ----------------------------------------------------------------------------------
    async def insert_conversion(self, conversion: Conversion) -> bool:
        try:
            async with self._engine.begin() as conn:
                await conn.execute(conversions.insert().values(_conversion_row(conversion)))
        except sa.exc.IntegrityError:
            return False
        return True

    async def get_conversion(self, account_id: str, conversion_id: str) -> Conversion | None:
        query = conversions.select().where(
            conversions.c.account_id == account_id, conversions.c.id == conversion_id
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _conversion_from(row._mapping) if row else None

    async def update_conversion(self, conversion: Conversion) -> Conversion:
        values = _conversion_row(conversion)
        await self._compare_and_set(
            conversions, conversion.account_id, conversion.id, conversion.version, values
        )
        return _conversion_from(values)

    async def list_conversions(
        self, account_id: str, *, after_id: str | None = None, limit: int = 100
    ) -> Sequence[Conversion]:
        query = conversions.select().where(conversions.c.account_id == account_id)
        if after_id is not None:
            query = query.where(conversions.c.id > after_id)
        query = query.order_by(conversions.c.id).limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_conversion_from(r._mapping) for r in rows]

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
        return [_conversion_from(r._mapping) for r in rows]

    async def purge_conversions_ended_before(self, cutoff: dt.datetime) -> int:
        stmt = conversions.delete().where(
            conversions.c.ended_at.is_not(None), conversions.c.ended_at < _utc(cutoff)
        )
        async with self._engine.begin() as conn:
            result = await conn.execute(stmt)
        return int(result.rowcount or 0)


async def open_store(store_url: str, *, migrate: bool = True) -> SqlStore:
    """Open the store at ``store_url``, upgrading its schema to the newest revision first."""
    async_url, sync_url = driver_urls(store_url)
    if migrate:
        # Alembic is synchronous: run it in a thread so a slow migration does not stall the event loop.
        await asyncio.to_thread(migrations.upgrade, sync_url)
    kwargs: dict[str, Any] = {}
    if async_url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
    engine = create_async_engine(async_url, **kwargs)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return SqlStore(engine)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    # WAL is a property of the database file: set it once. Asking for it again on every new connection
    # needs a lock that can fail at once with "database is locked" while another connection writes.
    cursor.execute("PRAGMA journal_mode")
    (mode,) = cursor.fetchone()
    if str(mode).lower() != "wal":
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
