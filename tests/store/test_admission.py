"""Admission control at session insert (quota per account, slots per size) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections import Counter

import sqlalchemy as sa

from openrr.domain.account import Account
from openrr.domain.session import Size, Status
from openrr.store import migrations
from openrr.store.base import Admission
from openrr.store.rows import session_row
from openrr.store.sql import SqlStore, driver_urls, open_store
from openrr.store.tables import accounts as accounts_table
from openrr.store.tables import sessions as sessions_table
from tests.store.helpers import T0, account_row_before_0006, make_account, make_session

HANDLE: dict[str, object] = {"kind": "fake", "key": "k"}


async def _holding(store: SqlStore, account_id: str) -> int:
    """Sessions of the account holding a server: what ``max_active_per_account`` limits."""
    query = sa.select(sa.func.count()).where(
        sessions_table.c.account_id == account_id, sessions_table.c.holds_server == sa.true()
    )
    async with store._engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def _count_rows(store: SqlStore, **where: str) -> int:
    query = sa.select(sa.func.count()).select_from(sessions_table)
    for column, value in where.items():
        query = query.where(sessions_table.c[column] == value)
    async with store._engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def test_without_limits_insert_says_inserted_or_exists(store: SqlStore, acct: Account) -> None:
    assert await store.insert_session(make_session(acct.id, "s1")) is Admission.INSERTED
    assert await store.insert_session(make_session(acct.id, "s1", lease_minutes=99)) is Admission.EXISTS
    stored = await store.get_session(acct.id, "s1")
    assert stored is not None
    assert stored.lease_minutes == 30


async def test_exists_comes_before_quota_and_capacity(store: SqlStore, acct: Account) -> None:
    assert await store.insert_session(make_session(acct.id, "s1"), max_active_per_account=1) is (
        Admission.INSERTED
    )
    # both limits are reached now, but a retry of the same create must learn that the id exists
    retry = make_session(acct.id, "s1", lease_minutes=45)
    assert await store.insert_session(retry, max_active_per_account=1, size_slots=1) is Admission.EXISTS
    assert await store.insert_session(retry, max_active_per_account=0) is Admission.EXISTS
    assert await store.insert_session(retry, size_slots=0) is Admission.EXISTS
    stored = await store.get_session(acct.id, "s1")
    assert stored is not None
    assert stored.lease_minutes == 30


async def test_quota_counts_the_account_across_sizes(store: SqlStore, acct: Account) -> None:
    other = make_account()
    await store.add_account(other)
    limit = {"max_active_per_account": 2}
    assert await store.insert_session(make_session(acct.id, "a1"), **limit) is Admission.INSERTED
    premium = make_session(acct.id, "a2", Status.READY, size=Size.PREMIUM, ready_at=T0)
    assert await store.insert_session(premium, **limit) is Admission.INSERTED
    assert await store.insert_session(make_session(acct.id, "a3"), **limit) is Admission.OVER_QUOTA
    assert await store.insert_session(make_session(acct.id, "a3", size=Size.PREMIUM), **limit) is (
        Admission.OVER_QUOTA
    )
    assert await store.get_session(acct.id, "a3") is None
    # another account has its own quota
    assert await store.insert_session(make_session(other.id, "a3"), **limit) is Admission.INSERTED
    # a bigger quota, or none, admits it
    assert await store.insert_session(make_session(acct.id, "a3"), max_active_per_account=3) is (
        Admission.INSERTED
    )
    assert await store.insert_session(make_session(acct.id, "a4")) is Admission.INSERTED
    assert await _holding(store, acct.id) == 4
    assert await _holding(store, other.id) == 1


async def test_capacity_counts_the_size_across_accounts(store: SqlStore, acct: Account) -> None:
    other = make_account()
    await store.add_account(other)
    slots = {"size_slots": 2}
    assert await store.insert_session(make_session(acct.id, "s1"), **slots) is Admission.INSERTED
    assert await store.insert_session(make_session(other.id, "s2"), **slots) is Admission.INSERTED
    assert await store.insert_session(make_session(acct.id, "s3"), **slots) is Admission.NO_CAPACITY
    assert await store.insert_session(make_session(other.id, "s3"), **slots) is Admission.NO_CAPACITY
    # the other size has its own slots
    assert await store.insert_session(make_session(acct.id, "p1", size=Size.PREMIUM), **slots) is (
        Admission.INSERTED
    )
    assert await store.count_holding_by_size() == {"Standard": 2, "Premium": 1}
    assert await _count_rows(store) == 3


async def test_quota_is_checked_before_capacity(store: SqlStore, acct: Account) -> None:
    assert await store.insert_session(make_session(acct.id, "s1")) is Admission.INSERTED
    both = {"max_active_per_account": 1, "size_slots": 1}
    assert await store.insert_session(make_session(acct.id, "s2"), **both) is Admission.OVER_QUOTA
    assert await store.insert_session(
        make_session(acct.id, "s2"), max_active_per_account=2, size_slots=1
    ) is (Admission.NO_CAPACITY)


async def test_ended_sessions_hold_a_server_until_it_is_released(store: SqlStore, acct: Account) -> None:
    rows = [
        make_session(acct.id, "stopped-unreleased", Status.STOPPED, host_handle=HANDLE),
        make_session(acct.id, "error-unreleased", Status.ERROR, host_handle=HANDLE),
        make_session(acct.id, "stopped-released", Status.STOPPED, host_handle=HANDLE, host_released=True),
        make_session(acct.id, "expired-released", Status.EXPIRED, host_handle=HANDLE, host_released=True),
        # failed before any server was started: there is nothing to hold
        make_session(acct.id, "error-no-server", Status.ERROR),
    ]
    for s in rows:
        assert await store.insert_session(s) is Admission.INSERTED
    assert await _holding(store, acct.id) == 2
    assert await store.count_holding_by_size() == {"Standard": 2, "Premium": 0}
    assert await store.insert_session(make_session(acct.id, "new"), size_slots=2) is Admission.NO_CAPACITY
    assert await store.insert_session(make_session(acct.id, "new"), max_active_per_account=2) is (
        Admission.OVER_QUOTA
    )
    assert await store.insert_session(make_session(acct.id, "new"), size_slots=3) is Admission.INSERTED


async def test_updates_move_sessions_in_and_out_of_the_count(store: SqlStore, acct: Account) -> None:
    starting = make_session(acct.id, "s1")
    assert await store.insert_session(starting, size_slots=1) is Admission.INSERTED
    assert await store.insert_session(make_session(acct.id, "s2"), size_slots=1) is Admission.NO_CAPACITY

    ready = await store.update_session(
        dataclasses.replace(starting, status=Status.READY, ready_at=starting.created_at, host_handle=HANDLE)
    )
    stopped = await store.update_session(
        dataclasses.replace(ready, status=Status.STOPPED, ended_at=starting.created_at)
    )
    # ended, but its render server is still there
    assert await store.count_holding_by_size() == {"Standard": 1, "Premium": 0}
    assert await store.insert_session(make_session(acct.id, "s2"), size_slots=1) is Admission.NO_CAPACITY

    await store.update_session(dataclasses.replace(stopped, host_released=True))
    assert await store.count_holding_by_size() == {"Standard": 0, "Premium": 0}
    assert await _holding(store, acct.id) == 0
    assert await store.insert_session(make_session(acct.id, "s2"), size_slots=1) is Admission.INSERTED


async def test_a_session_that_holds_nothing_is_never_refused(store: SqlStore, acct: Account) -> None:
    assert await store.insert_session(make_session(acct.id, "s1")) is Admission.INSERTED
    ended = make_session(acct.id, "old", Status.STOPPED, host_released=True)
    assert await store.insert_session(ended, max_active_per_account=0, size_slots=0) is Admission.INSERTED
    assert await store.insert_session(ended, max_active_per_account=0, size_slots=0) is Admission.EXISTS


# ---- many creates at once, through two replicas ----------------------------------------------------------
async def _race(backend_url: str, creates: list[tuple[str, str]], **limits: int) -> list[Admission]:
    """Insert (account_id, session_id) pairs all at once, alternating between two replicas."""
    replicas = [await open_store(backend_url), await open_store(backend_url)]
    try:
        return await asyncio.gather(
            *(
                replicas[i % 2].insert_session(make_session(account_id, session_id), **limits)
                for i, (account_id, session_id) in enumerate(creates)
            )
        )
    finally:
        for replica in replicas:
            await replica.close()


async def test_concurrent_creates_never_exceed_capacity(store: SqlStore, backend_url: str) -> None:
    accounts = [make_account() for _ in range(5)]
    for a in accounts:
        await store.add_account(a)
    creates = [(accounts[i % 5].id, f"s{i:03}") for i in range(100)]
    got = await _race(backend_url, creates, size_slots=10)
    assert Counter(got) == {Admission.INSERTED: 10, Admission.NO_CAPACITY: 90}, Counter(got)
    assert await _count_rows(store) == 10
    assert await store.count_holding_by_size() == {"Standard": 10, "Premium": 0}
    inserted = {creates[i] for i, verdict in enumerate(got) if verdict is Admission.INSERTED}
    for account_id, session_id in creates:
        found = await store.get_session(account_id, session_id)
        assert (found is not None) == ((account_id, session_id) in inserted)


async def test_concurrent_creates_never_exceed_quota(store: SqlStore, backend_url: str) -> None:
    mine, other = make_account(), make_account()
    await store.add_account(mine)
    await store.add_account(other)
    creates = [(mine.id, f"s{i:03}") for i in range(100)] + [(other.id, f"o{i}") for i in range(10)]
    got = await _race(backend_url, creates, max_active_per_account=7)
    assert Counter(got[:100]) == {Admission.INSERTED: 7, Admission.OVER_QUOTA: 93}, Counter(got[:100])
    assert Counter(got[100:]) == {Admission.INSERTED: 7, Admission.OVER_QUOTA: 3}, Counter(got[100:])
    assert await _count_rows(store, account_id=mine.id) == 7
    assert await _holding(store, mine.id) == 7
    assert await _holding(store, other.id) == 7


async def test_concurrent_retries_of_one_create_insert_once(
    store: SqlStore, acct: Account, backend_url: str
) -> None:
    got = await _race(backend_url, [(acct.id, "same")] * 40, max_active_per_account=5, size_slots=5)
    assert Counter(got) == {Admission.INSERTED: 1, Admission.EXISTS: 39}, Counter(got)
    got = await _race(backend_url, [(acct.id, "plain")] * 40)
    assert Counter(got) == {Admission.INSERTED: 1, Admission.EXISTS: 39}, Counter(got)


# ---- the migration that added what admission counts ------------------------------------------------------
async def test_upgrade_from_0002_keeps_sessions_and_counts_them(backend_url: str) -> None:
    """Sessions written before revision 0003 (with host handles stored as JSON null) are counted right."""
    _, sync_url = driver_urls(backend_url)
    migrations.upgrade(sync_url, "0002")
    account = make_account()
    other = make_account()
    rows = [
        make_session(account.id, "starting", Status.STARTING),
        make_session(account.id, "ready", Status.READY, ready_at=T0, host_handle=HANDLE),
        make_session(account.id, "stopped-unreleased", Status.STOPPED, host_handle=HANDLE),
        make_session(account.id, "stopped-released", Status.STOPPED, host_handle=HANDLE, host_released=True),
        make_session(account.id, "stopped-no-server", Status.STOPPED),
        make_session(account.id, "error-no-server", Status.ERROR),
        make_session(other.id, "premium", Status.READY, size=Size.PREMIUM, host_handle=HANDLE),
    ]
    engine = sa.create_engine(sync_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            for a in (account, other):
                conn.execute(accounts_table.insert().values(account_row_before_0006(a)))
            for s in rows:
                # as revision 0002's code wrote them: no holds_server (0003) or connect_secret (0004) yet
                later = ("holds_server", "connect_secret")
                values = {k: v for k, v in session_row(s).items() if k not in later}
                conn.execute(sessions_table.insert().values(values))
            conn.execute(  # a handle that is SQL NULL rather than JSON null means no server as well
                sessions_table.update()
                .where(sessions_table.c.id == "error-no-server")
                .values(host_handle=sa.null())
            )
    finally:
        engine.dispose()

    upgraded = await open_store(backend_url)
    try:
        async with upgraded._engine.connect() as conn:
            version = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar_one()
            holding = dict(
                (await conn.execute(sa.select(sessions_table.c.id, sessions_table.c.holds_server))).all()
            )
        assert version == "0007"  # open_store upgrades to the newest revision
        assert holding == {
            "starting": True,
            "ready": True,
            "stopped-unreleased": True,
            "stopped-released": False,
            "stopped-no-server": False,
            "error-no-server": False,
            "premium": True,
        }
        for s in rows:
            assert await upgraded.get_session(s.account_id, s.id) == s
        assert await _holding(upgraded, account.id) == 3
        assert await upgraded.count_holding_by_size() == {"Standard": 3, "Premium": 1}
        assert await upgraded.insert_session(make_session(account.id, "new"), size_slots=3) is (
            Admission.NO_CAPACITY
        )
        assert await upgraded.try_lease("reaper", "a", dt.timedelta(seconds=30), T0)
    finally:
        await upgraded.close()
