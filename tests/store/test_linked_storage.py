"""Storage linked to one account (revision 0004), on SQLite and PostgreSQL, and the upgrade from 0003."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from openrr.domain.account import Account, LinkedStorage
from openrr.domain.clock import ManualClock
from openrr.errors import InvalidInput, NotFound
from openrr.services.accounts import AccountService
from openrr.storage.base import LinkedAccount
from openrr.store import migrations
from openrr.store.sql import SqlStore, driver_urls, open_store
from openrr.store.tables import accounts as accounts_table
from openrr.store.tables import sessions as sessions_table
from tests.store.helpers import T0, account_row_before_0006, make_account, make_session

KEY = "c3RvcmFnZWtleQ=="


async def test_links_belong_to_one_account(store: SqlStore, acct: Account) -> None:
    other = make_account()
    await store.add_account(other)
    await store.link_storage(LinkedStorage(acct.id, "zeta", KEY, "", T0))
    await store.link_storage(LinkedStorage(acct.id, "alpha", None, "http://127.0.0.1:10000/alpha", T0))
    assert [(s.name, s.key) for s in await store.linked_storage(acct.id)] == [("alpha", None), ("zeta", KEY)]
    assert await store.linked_storage(other.id) == []
    # linking a name again replaces the link
    await store.link_storage(LinkedStorage(acct.id, "zeta", "bmV3a2V5", "", T0))
    assert [s.key for s in await store.linked_storage(acct.id)] == [None, "bmV3a2V5"]
    assert not await store.unlink_storage(other.id, "zeta")  # not the other account's to remove
    assert await store.unlink_storage(acct.id, "zeta")
    assert not await store.unlink_storage(acct.id, "zeta")
    assert [s.name for s in await store.linked_storage(acct.id)] == ["alpha"]


async def test_the_account_service_checks_and_never_repeats_the_key(store: SqlStore, acct: Account) -> None:
    service = AccountService(store, ManualClock(T0))
    linked = await service.link_storage(acct.id, f"mystore={KEY}@http://127.0.0.1:10000/mystore")
    assert linked == LinkedAccount("mystore", KEY, "http://127.0.0.1:10000/mystore")
    assert KEY not in str(linked)
    assert KEY not in repr(linked)
    assert await service.linked_storage(acct.id) == (linked,)
    for bad in (f"UPPER={KEY}", "mystore=", f"mystore={KEY}@ftp://x"):
        with pytest.raises(InvalidInput) as info:
            await service.link_storage(acct.id, bad)
        assert KEY not in info.value.message
    missing = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(NotFound):
        await service.link_storage(missing, f"mystore={KEY}")
    with pytest.raises(NotFound):
        await service.unlink_storage(missing, "mystore")
    with pytest.raises(NotFound):
        await service.unlink_storage(acct.id, "nothere")


async def test_upgrade_from_0003_keeps_the_data_and_adds_the_table(backend_url: str) -> None:
    _, sync_url = driver_urls(backend_url)
    migrations.upgrade(sync_url, "0003")
    account = make_account()
    session = make_session(account.id, "s1")
    engine = sa.create_engine(sync_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(accounts_table.insert().values(account_row_before_0006(account)))
            conn.execute(
                sessions_table.insert().values(
                    account_id=session.account_id,
                    id=session.id,
                    size=session.size.value,
                    status=session.status.value,
                    lease_minutes=session.lease_minutes,
                    models=[],
                    created_at=session.created_at,
                    version=0,
                    holds_server=True,
                )
            )
            tables = sa.inspect(conn).get_table_names()
        assert "linked_storage" not in tables
    finally:
        engine.dispose()

    upgraded = await open_store(backend_url)
    try:
        async with upgraded._engine.connect() as conn:
            version = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar_one()
        assert version == "0007"
        assert await upgraded.get_account(account.id) == account
        kept = await upgraded.get_session(account.id, "s1")
        assert kept is not None
        assert kept.status is session.status
        assert await upgraded.linked_storage(account.id) == []  # nothing is linked by the upgrade
        await upgraded.link_storage(LinkedStorage(account.id, "mystore", KEY, "", T0))
        assert [s.name for s in await upgraded.linked_storage(account.id)] == ["mystore"]
    finally:
        await upgraded.close()
