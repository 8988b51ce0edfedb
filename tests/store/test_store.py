"""The SQL store on SQLite and on PostgreSQL: the same tests, both backends."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import sqlite3
import threading
import uuid
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from openrr.domain.account import Account, SigningKey
from openrr.domain.session import Endpoint, Session, SessionError, Size, Status
from openrr.store import migrations
from openrr.store.base import Admission, StaleWrite
from openrr.store.sql import SqlStore, driver_urls, open_store
from openrr.store.tables import sessions as sessions_table
from tests.conftest import Account as ApiAccount
from tests.fakes import FakeHost
from tests.store.helpers import T0, make_account, make_session


@pytest.fixture
def store_url(backend_url: str) -> str:
    """Overrides conftest's: the in-process control plane below runs on both backends."""
    return backend_url


# ---- accounts -------------------------------------------------------------------------------------------
async def test_accounts_add_get_list_and_set_key_hash(store: SqlStore) -> None:
    first = make_account(name="first", at=T0)
    second = make_account(name="second", at=T0 + dt.timedelta(seconds=1))
    await store.add_account(second)
    await store.add_account(first)

    assert await store.get_account(first.id) == first
    assert await store.get_account(str(uuid.uuid4())) is None
    got = await store.get_account(second.id)
    assert got is not None
    assert got.created_at.tzinfo is not None
    assert got.created_at.utcoffset() == dt.timedelta(0)
    assert list(await store.list_accounts()) == [first, second]  # oldest first

    await store.set_account_key_hash(first.id, "primary", "sha256$01$new-primary")
    await store.set_account_key_hash(first.id, "secondary", "sha256$02$new-secondary")
    assert await store.get_account(first.id) == dataclasses.replace(
        first, primary_key_hash="sha256$01$new-primary", secondary_key_hash="sha256$02$new-secondary"
    )
    assert await store.get_account(second.id) == second
    with pytest.raises(KeyError):
        await store.set_account_key_hash(first.id, "tertiary", "x")


# ---- signing keys ---------------------------------------------------------------------------------------
def signing(kid: str, at: dt.datetime = T0) -> SigningKey:
    return SigningKey(kid=kid, private_pem=f"-----PEM {kid}-----\n".encode(), created_at=at)


async def test_signing_key_is_stored_once(store: SqlStore) -> None:
    first = await store.signing_key(signing("k1"))
    assert first == signing("k1")
    assert await store.signing_key(signing("k2", T0 + dt.timedelta(hours=1))) == first
    assert await store.signing_key(signing("k3")) == first


async def test_signing_keys_rotate_and_retire(store: SqlStore) -> None:
    first = await store.signing_key(signing("k1"))
    second = signing("k2", T0 + dt.timedelta(hours=5))
    third = signing("k3", T0 + dt.timedelta(hours=30))
    for key in (second, third):
        await store.add_signing_key(key)
    assert [k.kid for k in await store.signing_keys()] == ["k3", "k2", "k1"]
    assert await store.signing_key(signing("k4")) == third  # the newest is the current one
    # Keys retire once every token they signed has expired: older than the current one by 26 hours.
    assert await store.drop_signing_keys("k3", third.created_at - dt.timedelta(hours=26)) == 1
    assert [k.kid for k in await store.signing_keys()] == ["k3", "k2"]
    assert first.kid == "k1"
    assert await store.drop_signing_keys("k3") == 1  # revoked: all but the current one
    assert await store.signing_keys() == [third]


async def test_account_tokens_not_before(store: SqlStore) -> None:
    account = make_account()
    await store.add_account(account)
    assert (await store.get_account(account.id)) == account
    assert account.tokens_not_before is None
    await store.set_account_key_hash(account.id, "primary", "sha256$00$11", tokens_not_before=T0)
    stored = await store.get_account(account.id)
    assert stored is not None
    assert stored.tokens_not_before == T0
    assert stored.primary_key_hash == "sha256$00$11"


async def test_signing_key_race_has_one_winner(store: SqlStore) -> None:
    candidates = [signing(f"k{i}", T0 + dt.timedelta(seconds=i)) for i in range(4)]
    got = await asyncio.gather(*(store.signing_key(c) for c in candidates))
    assert len({k.kid for k in got}) == 1, got
    assert got[0] in candidates
    assert await store.signing_key(signing("late")) == got[0]


async def test_a_new_sqlite_file_is_in_wal_mode_before_the_first_pooled_connection(tmp_path: Path) -> None:
    """Stores opened together on a new file used to race to switch it to WAL ("database is locked")."""
    stores = await asyncio.gather(*(open_store(f"sqlite:///{tmp_path / 'new.db'}") for _ in range(3)))
    try:
        with sqlite3.connect(tmp_path / "new.db") as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        keys = await asyncio.gather(*(s.signing_key(signing(f"k{i}")) for i, s in enumerate(stores)))
        assert keys[0] == keys[1] == keys[2]
    finally:
        for s in stores:
            await s.close()


async def test_signing_key_race_between_stores_has_one_winner(backend_url: str) -> None:
    """Two replicas starting together (two engines, two connection pools) agree on one key."""
    stores = [await open_store(backend_url) for _ in range(3)]
    try:
        for round_ in range(10):
            if round_:
                async with stores[0]._engine.begin() as conn:
                    await conn.execute(sa.text("DELETE FROM signing_keys"))
            got = await asyncio.gather(
                *(s.signing_key(signing(f"r{round_}s{i}")) for i, s in enumerate(stores))
            )
            assert got[0] == got[1] == got[2], got
    finally:
        for s in stores:
            await s.close()


# ---- sessions: insert, get ------------------------------------------------------------------------------
async def test_insert_session_refuses_duplicates(store: SqlStore, acct: Account) -> None:
    other = make_account()
    await store.add_account(other)
    assert await store.insert_session(make_session(acct.id, "s1")) is Admission.INSERTED
    assert await store.insert_session(make_session(acct.id, "s1", lease_minutes=99)) is Admission.EXISTS
    stored = await store.get_session(acct.id, "s1")
    assert stored is not None
    assert stored.lease_minutes == 30
    # the key is (account_id, id): another account may use the same session id
    assert await store.insert_session(make_session(other.id, "s1")) is Admission.INSERTED
    assert await store.get_session(acct.id, "missing") is None
    assert await store.get_session(str(uuid.uuid4()), "s1") is None


async def test_get_session_round_trips_every_field(store: SqlStore, acct: Account) -> None:
    ready = T0 + dt.timedelta(minutes=1, seconds=2, microseconds=345678)
    # stored in UTC whatever the zone it came with
    ended = dt.datetime(2026, 11, 23, 14, 30, 5, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    full = Session(
        account_id=acct.id,
        id="A-session_id.with-every-field",
        size=Size.PREMIUM,
        lease_minutes=1440,
        status=Status.ERROR,
        created_at=T0,
        models=("builtin://Engine", "https://example.test/model.arrAsset?sv=1&sig=a%2Fb"),
        ready_at=ready,
        ended_at=ended,
        endpoint=Endpoint("render-7.example.test", 50123, 50124, 31.25),
        teraflops=31.25,
        error=SessionError("RenderServerExited", "The render server exited with code 3 — ünïcode ✓."),
        host_handle={"kind": "local", "pid": 4242, "nested": {"ports": [1, 2], "ok": True, "none": None}},
        host_released=True,
        version=7,
    )
    assert await store.insert_session(full)
    got = await store.get_session(acct.id, full.id)
    assert got == full
    assert got is not None
    assert isinstance(got.models, tuple)
    assert isinstance(got.host_handle, dict)
    assert got.size is Size.PREMIUM
    assert got.status is Status.ERROR
    for value in (got.created_at, got.ready_at, got.ended_at):
        assert value is not None
        assert value.tzinfo is not None
        assert value.utcoffset() == dt.timedelta(0)
    assert got.ended_at == dt.datetime(2026, 11, 23, 12, 30, 5, 123456, tzinfo=dt.UTC)

    minimal = make_session(acct.id, "minimal")
    assert await store.insert_session(minimal)
    got = await store.get_session(acct.id, "minimal")
    assert got == minimal
    assert got is not None
    assert got.models == ()
    assert got.endpoint is None
    assert got.error is None
    assert got.host_handle is None
    assert got.ready_at is None
    assert got.ended_at is None
    assert got.teraflops is None
    assert got.host_released is False
    assert got.version == 0


# ---- sessions: compare-and-set --------------------------------------------------------------------------
async def test_update_session_is_compare_and_set(store: SqlStore, acct: Account) -> None:
    s0 = make_session(acct.id, "s1")
    assert await store.insert_session(s0)

    endpoint = Endpoint("render.test", 50000, 50001, 15.0)
    s1 = await store.update_session(
        dataclasses.replace(s0, status=Status.READY, ready_at=T0, endpoint=endpoint, teraflops=15.0)
    )
    assert s1.version == 1
    assert s1.status is Status.READY
    assert s1.endpoint == endpoint
    assert await store.get_session(acct.id, "s1") == s1

    # a writer that read version 0 loses, and changes nothing
    with pytest.raises(StaleWrite):
        await store.update_session(dataclasses.replace(s0, lease_minutes=600))
    assert await store.get_session(acct.id, "s1") == s1

    s2 = await store.update_session(dataclasses.replace(s1, lease_minutes=60))
    assert s2.version == 2
    assert s2.lease_minutes == 60
    assert await store.get_session(acct.id, "s1") == s2
    with pytest.raises(StaleWrite):
        await store.update_session(s1)
    with pytest.raises(StaleWrite):  # a version from the future is stale too
        await store.update_session(dataclasses.replace(s2, version=5))
    with pytest.raises(StaleWrite):  # and so is a session that is not there
        await store.update_session(make_session(acct.id, "missing"))
    assert await store.get_session(acct.id, "s1") == s2


async def test_concurrent_updates_have_one_winner(store: SqlStore, acct: Account) -> None:
    s0 = make_session(acct.id, "s1")
    assert await store.insert_session(s0)
    attempts = [dataclasses.replace(s0, lease_minutes=40 + i) for i in range(5)]
    results = await asyncio.gather(*(store.update_session(a) for a in attempts), return_exceptions=True)
    winners = [r for r in results if isinstance(r, Session)]
    assert len(winners) == 1, results
    assert all(isinstance(r, StaleWrite) for r in results if not isinstance(r, Session))
    assert await store.get_session(acct.id, "s1") == winners[0]
    assert winners[0].version == 1


# ---- sessions: queries ----------------------------------------------------------------------------------
async def test_list_sessions_filters_orders_and_pages(store: SqlStore, acct: Account) -> None:
    other = make_account()
    await store.add_account(other)
    statuses = {
        "s05": Status.READY,
        "s01": Status.STARTING,
        "s04": Status.STOPPED,
        "s02": Status.READY,
        "s10": Status.EXPIRED,
        "s03": Status.ERROR,
        "s07": Status.STARTING,
    }
    for sid, status in statuses.items():
        assert await store.insert_session(make_session(acct.id, sid, status))
    assert await store.insert_session(make_session(other.id, "s00", Status.READY))

    def ids(found: object) -> list[str]:
        assert isinstance(found, list | tuple)
        return [s.id for s in found]

    active = [Status.STARTING, Status.READY]
    assert ids(await store.list_sessions(acct.id, statuses=active)) == ["s01", "s02", "s05", "s07"]
    assert ids(await store.list_sessions(acct.id, statuses=list(Status))) == sorted(statuses)
    assert ids(await store.list_sessions(acct.id, statuses=[Status.STOPPED, Status.EXPIRED])) == [
        "s04",
        "s10",
    ]
    assert ids(await store.list_sessions(acct.id, statuses=[])) == []
    assert ids(await store.list_sessions(other.id, statuses=active)) == ["s00"]

    # paging
    page1 = await store.list_sessions(acct.id, statuses=active, limit=2)
    assert ids(page1) == ["s01", "s02"]
    page2 = await store.list_sessions(acct.id, statuses=active, after_id=page1[-1].id, limit=2)
    assert ids(page2) == ["s05", "s07"]
    assert ids(await store.list_sessions(acct.id, statuses=active, after_id="s07", limit=2)) == []
    assert ids(await store.list_sessions(acct.id, statuses=active, after_id="s03")) == ["s05", "s07"]
    assert ids(await store.list_sessions(acct.id, statuses=list(Status), after_id="s0")) == sorted(statuses)


async def test_sessions_needing_attention(store: SqlStore, acct: Account) -> None:
    rows = [
        make_session(acct.id, "starting", Status.STARTING),
        make_session(acct.id, "ready", Status.READY, ready_at=T0),
        make_session(acct.id, "stopped-unreleased", Status.STOPPED, host_released=False),
        make_session(acct.id, "error-unreleased", Status.ERROR, host_released=False),
        make_session(acct.id, "stopped-released", Status.STOPPED, host_released=True),
        make_session(acct.id, "expired-released", Status.EXPIRED, host_released=True),
        make_session(acct.id, "error-released", Status.ERROR, host_released=True),
    ]
    for s in rows:
        assert await store.insert_session(s)
    found = await store.sessions_needing_attention()
    assert sorted(s.id for s in found) == ["error-unreleased", "ready", "starting", "stopped-unreleased"]
    by_id = {s.id: s for s in found}
    assert by_id["ready"] == rows[1]


async def test_purge_ended_before(store: SqlStore, acct: Account) -> None:
    cutoff = T0 + dt.timedelta(days=7)
    old, new = cutoff - dt.timedelta(seconds=1), cutoff + dt.timedelta(seconds=1)
    rows = [
        make_session(acct.id, "old-stopped", Status.STOPPED, ended_at=old, host_released=True),
        make_session(acct.id, "old-expired", Status.EXPIRED, ended_at=old, host_released=True),
        make_session(acct.id, "old-unreleased", Status.ERROR, ended_at=old, host_released=False),
        make_session(acct.id, "at-cutoff", Status.STOPPED, ended_at=cutoff, host_released=True),
        make_session(acct.id, "new-stopped", Status.STOPPED, ended_at=new, host_released=True),
        make_session(acct.id, "active", Status.READY, ready_at=T0, host_released=True),
        make_session(acct.id, "starting", Status.STARTING),
    ]
    for s in rows:
        assert await store.insert_session(s)
    assert await store.purge_ended_before(cutoff) == 2
    assert await store.get_session(acct.id, "old-stopped") is None
    assert await store.get_session(acct.id, "old-expired") is None
    left = await store.list_sessions(acct.id, statuses=list(Status))
    assert [s.id for s in left] == ["active", "at-cutoff", "new-stopped", "old-unreleased", "starting"]
    assert await store.purge_ended_before(cutoff) == 0
    # a cutoff in another zone means the same instant (SQLite once compared its wall time)
    later = (new + dt.timedelta(seconds=1)).astimezone(dt.timezone(dt.timedelta(hours=-5)))
    assert await store.purge_ended_before(later) == 2
    left = await store.list_sessions(acct.id, statuses=list(Status))
    assert [s.id for s in left] == ["active", "old-unreleased", "starting"]


async def test_count_sessions_by_status(store: SqlStore, acct: Account) -> None:
    assert await store.count_sessions_by_status() == {s: 0 for s in Status}
    other = make_account()
    await store.add_account(other)
    for i, status in enumerate([Status.READY, Status.READY, Status.STARTING, Status.STOPPED, Status.READY]):
        assert await store.insert_session(make_session(acct.id, f"s{i}", status))
    assert await store.insert_session(make_session(other.id, "x", Status.ERROR))
    counts = await store.count_sessions_by_status()
    assert counts == {
        Status.STARTING: 1,
        Status.READY: 3,
        Status.STOPPED: 1,
        Status.EXPIRED: 0,
        Status.ERROR: 1,
    }
    assert all(isinstance(k, Status) for k in counts)


# ---- migrations -----------------------------------------------------------------------------------------
async def _schema_version(store: SqlStore) -> list[str]:
    async with store._engine.connect() as conn:
        return [r[0] for r in (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).all()]


async def test_migrations_twice_are_a_no_op(backend_url: str) -> None:
    first = await open_store(backend_url)
    try:
        account = make_account()
        await first.add_account(account)
        assert await first.insert_session(make_session(account.id, "s1"))
        version = await _schema_version(first)
        assert version == ["0007"]
    finally:
        await first.close()

    _, sync_url = driver_urls(backend_url)
    migrations.upgrade(sync_url)
    second = await open_store(backend_url)
    try:
        assert await _schema_version(second) == version
        assert await second.get_account(account.id) == account
        assert await second.get_session(account.id, "s1") == make_session(account.id, "s1")
        async with second._engine.connect() as conn:
            tables = await conn.run_sync(lambda c: sorted(sa.inspect(c).get_table_names()))
        assert tables == [
            "accounts",
            "alembic_version",
            "conversions",
            "leases",
            "linked_storage",
            "models",
            "sessions",
            "signing_keys",
        ]
    finally:
        await second.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    return str(request.getfixturevalue("postgres_url"))


async def test_concurrent_open_store_on_a_fresh_database(fresh_url: str) -> None:
    """Processes starting together on an empty store: one migrates (advisory lock on PostgreSQL, a file
    lock on SQLite), all succeed."""
    postgres_url = fresh_url
    n = 4
    barrier = threading.Barrier(n)

    async def open_and_use(i: int) -> str:
        s = await open_store(postgres_url)
        try:
            account = make_account()
            await s.add_account(account)
            assert await s.insert_session(make_session(account.id, f"s{i}"))
            return (await _schema_version(s))[0]
        finally:
            await s.close()

    def replica(i: int) -> str:
        # open_store migrates synchronously, so each replica gets its own thread and event loop
        barrier.wait(timeout=30)
        return asyncio.run(open_and_use(i))

    versions = await asyncio.gather(*(asyncio.to_thread(replica, i) for i in range(n)))
    assert versions == ["0007"] * n
    s = await open_store(postgres_url)
    try:
        async with s._engine.connect() as conn:
            count = (await conn.execute(sa.select(sa.func.count()).select_from(sessions_table))).scalar()
        assert count == n
    finally:
        await s.close()


# ---- the whole control plane on each backend -------------------------------------------------------------
V = {"api-version": "2021-01-01"}


async def test_control_plane_create_get_patch_stop(
    client: httpx.AsyncClient, account: ApiAccount, fake_host: FakeHost, store_url: str
) -> None:
    base = f"/accounts/{account.id}/sessions/s1"
    resp = await client.put(
        base, params=V, json={"maxLeaseTimeMinutes": 30, "size": "Standard"}, headers=account.auth
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"] == "Starting"
    await fake_host.settle()

    body = (await client.get(base, params=V, headers=account.auth)).json()
    assert body["status"] == "Ready"
    assert body["hostname"] == "render.test"
    assert body["maxLeaseTimeMinutes"] == 30

    resp = await client.patch(base, params=V, json={"maxLeaseTimeMinutes": 90}, headers=account.auth)
    assert resp.status_code == 200, resp.text
    assert resp.json()["maxLeaseTimeMinutes"] == 90
    body = (await client.get(base, params=V, headers=account.auth)).json()
    assert body["maxLeaseTimeMinutes"] == 90

    resp = await client.post(f"{base}/:stop", params=V, headers=account.auth)
    assert resp.status_code == 204, resp.text
    body = (await client.get(base, params=V, headers=account.auth)).json()
    assert body["status"] == "Stopped"
    assert "hostname" not in body

    listed = (await client.get(f"/accounts/{account.id}/sessions", params=V, headers=account.auth)).json()
    assert listed == {"sessions": []}

    # what the API did is in the backend under test, not somewhere else
    direct = await open_store(store_url, migrate=False)
    try:
        stored = await direct.get_session(account.id, "s1")
    finally:
        await direct.close()
    assert stored is not None
    assert stored.status is Status.STOPPED
    assert stored.lease_minutes == 90
    assert stored.version >= 3
