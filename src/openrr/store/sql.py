"""SQL store on SQLAlchemy (asyncio): SQLite in WAL mode by default, PostgreSQL for real deployments.

The schema is owned by Alembic (store/migrations); ``open_store`` upgrades it to head before use, under an
advisory lock on PostgreSQL so that replicas starting together migrate once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from openrr.domain.account import Account, LinkedStorage, SigningKey
from openrr.domain.conversion import Conversion, ConversionInput, ConversionOutput, ConversionStatus
from openrr.domain.session import Endpoint, Session, SessionError, Size, Status
from openrr.errors import InvalidInput
from openrr.private import private_sqlite
from openrr.store import migrations
from openrr.store.base import Admission, StaleWrite
from openrr.store.tables import accounts, conversions, leases, linked_storage, sessions, signing_keys

# Serialises signing_key's read-or-insert across replicas on PostgreSQL (SQLite has a single writer anyway).
_PG_SIGNING_KEY_LOCK = 72_501_114
# Serialises session admissions (count, then insert) across replicas on PostgreSQL.
_PG_ADMISSION_LOCK = 72_501_115


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


def holds_server(s: Session) -> bool:
    """Whether ``s`` occupies a render-server slot: active, or ended with its server not released yet."""
    return s.status.active or (not s.host_released and s.host_handle is not None)


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
        "holds_server": holds_server(s),
        "connect_secret": s.connect_secret,
        "version": s.version,
    }


def _signing_key_from(m: Mapping[Any, Any]) -> SigningKey:
    created = _utc(m["created_at"])
    assert created is not None
    return SigningKey(m["kid"], bytes(m["private_pem"]), created)


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
        connect_secret=m["connect_secret"],
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
    return Account(
        m["id"],
        m["name"],
        created,
        m["primary_key_hash"],
        m["secondary_key_hash"],
        _utc(m["tokens_not_before"]),
    )


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

    async def set_account_key_hash(
        self, account_id: str, slot: str, key_hash: str, *, tokens_not_before: dt.datetime | None = None
    ) -> None:
        column = {"primary": "primary_key_hash", "secondary": "secondary_key_hash"}[slot]
        values: dict[str, Any] = {column: key_hash}
        if tokens_not_before is not None:
            values["tokens_not_before"] = _utc(tokens_not_before)
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
                    created_at=_utc(link.created_at),
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
            created = _utc(row.created_at)
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
            sa.literal(_utc(make.created_at), signing_keys.c.created_at.type),
        ).where(~sa.exists().select_from(signing_keys))
        insert = signing_keys.insert().from_select(["kid", "private_pem", "created_at"], candidate)
        async with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_SIGNING_KEY_LOCK)))
            await conn.execute(insert)
            row = (await conn.execute(query)).first()
        assert row is not None
        return _signing_key_from(row._mapping)

    async def signing_keys(self) -> Sequence[SigningKey]:
        query = signing_keys.select().order_by(signing_keys.c.created_at.desc(), signing_keys.c.kid)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_signing_key_from(r._mapping) for r in rows]

    async def add_signing_key(self, key: SigningKey) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                signing_keys.insert().values(
                    kid=key.kid, private_pem=key.private_pem, created_at=_utc(key.created_at)
                )
            )

    async def drop_signing_keys(self, keep: str, created_before: dt.datetime | None = None) -> int:
        delete = signing_keys.delete().where(signing_keys.c.kid != keep)
        if created_before is not None:
            delete = delete.where(signing_keys.c.created_at < _utc(created_before))
        async with self._engine.begin() as conn:
            return (await conn.execute(delete)).rowcount or 0

    # ---- sessions -------------------------------------------------------------------------------------
    async def insert_session(
        self,
        session: Session,
        *,
        max_active_per_account: int | None = None,
        size_slots: int | None = None,
    ) -> Admission:
        insert = sessions.insert().values(_session_row(session))
        limited = max_active_per_account is not None or size_slots is not None
        try:
            if not limited or not holds_server(session):
                async with self._engine.begin() as conn:
                    await conn.execute(insert)
                return Admission.INSERTED
            async with self._admission() as conn:
                verdict = await self._admit(conn, session, max_active_per_account, size_slots)
                if verdict is Admission.INSERTED:
                    await conn.execute(insert)
                return verdict
        except sa.exc.IntegrityError:
            # The id was taken after the check (a plain insert is not serialised with admissions) or,
            # without a limit, before: either way it exists. A missing account is a bug, not a race.
            if await self.get_session(session.account_id, session.id) is None:
                raise
            return Admission.EXISTS

    @contextlib.asynccontextmanager
    async def _admission(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that no other admission on this database runs beside, until it commits."""
        async with self._engine.begin() as conn:
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

    @staticmethod
    async def _admit(
        conn: AsyncConnection, session: Session, max_active_per_account: int | None, size_slots: int | None
    ) -> Admission:
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
    async def insert_conversion(
        self, conversion: Conversion, *, max_pending_per_account: int | None = None
    ) -> Admission:
        insert = conversions.insert().values(_conversion_row(conversion))
        try:
            if max_pending_per_account is None:
                async with self._engine.begin() as conn:
                    await conn.execute(insert)
                return Admission.INSERTED
            async with self._admission() as conn:
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

    # ---- leader leases --------------------------------------------------------------------------------
    async def try_lease(self, name: str, holder: str, ttl: dt.timedelta, now: dt.datetime) -> bool:
        if ttl <= dt.timedelta(0):
            raise ValueError(f"a lease needs a positive ttl, not {ttl}")
        at = _utc(now)
        assert at is not None
        insert_ = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
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
        query = sa.select(leases.c.holder).where(leases.c.name == name, leases.c.expires_at > _utc(now))
        async with self._engine.connect() as conn:
            holder = (await conn.execute(query)).scalar_one_or_none()
        return None if holder is None else str(holder)


async def open_store(store_url: str, *, migrate: bool = True) -> SqlStore:
    """Open the store at ``store_url``, upgrading its schema to the newest revision first."""
    async_url, sync_url = driver_urls(store_url)
    parsed = sa.engine.make_url(sync_url)
    if parsed.get_backend_name() == "sqlite":
        private_sqlite(parsed.database or "")  # 0600 before the first connection creates it
    if migrate:
        # Alembic is synchronous: run it in a thread so a slow migration does not stall the event loop.
        await asyncio.to_thread(migrations.upgrade, sync_url)
    if parsed.get_backend_name() == "sqlite" and _is_file(parsed.database):
        await asyncio.to_thread(_use_wal, parsed.database or "")
    kwargs: dict[str, Any] = {}
    if async_url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
    engine = create_async_engine(async_url, **kwargs)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return SqlStore(engine)


_WAL_WAIT_S = 30.0


def _is_file(database: str | None) -> bool:
    return bool(database) and database != ":memory:" and not str(database).startswith("file:")


def _use_wal(database: str) -> None:
    """Put the database file in WAL mode, once, before any pooled connection opens.

    WAL is a property of the file. Switching to it needs the exclusive lock, and SQLite answers "database
    is locked" at once, without waiting out the busy timeout, when the switching connection holds a read
    lock that another connection's pending write would deadlock on; several replicas (or several stores
    in one process) opening a new file together hit exactly that. So switch here, on a connection of our
    own, and retry for a bounded time; the pooled connections never ask for the mode again.
    """
    deadline = time.monotonic() + _WAL_WAIT_S
    with contextlib.closing(sqlite3.connect(database, timeout=_WAL_WAIT_S)) as conn:
        while True:
            try:
                (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
                if str(mode).lower() != "wal":
                    (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
                continue
            if str(mode).lower() != "wal":
                raise RuntimeError(f"SQLite refused WAL mode (journal_mode is {mode!r})")
            return


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
