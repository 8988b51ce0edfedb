"""Conversions queued or running per account: checked and inserted atomically, on both backends, also when
many creates race through two replicas."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter

from openrr.domain.account import Account
from openrr.domain.conversion import ConversionStatus
from openrr.store.base import Admission
from openrr.store.sql import SqlStore, open_store
from tests.api.test_conversions_store import conversion
from tests.store.helpers import T0, make_account


async def test_the_pending_limit_counts_queued_and_running_only(store: SqlStore, acct: Account) -> None:
    assert (
        await store.insert_conversion(conversion(acct.id, "c1"), max_pending_per_account=2)
        is Admission.INSERTED
    )
    assert (
        await store.insert_conversion(conversion(acct.id, "c2"), max_pending_per_account=2)
        is Admission.INSERTED
    )
    assert (
        await store.insert_conversion(conversion(acct.id, "c3"), max_pending_per_account=2)
        is Admission.OVER_QUOTA
    )
    assert await store.get_conversion(acct.id, "c3") is None
    # the same id again is EXISTS, not over quota: the caller compares settings (idempotent create)
    assert (
        await store.insert_conversion(conversion(acct.id, "c1"), max_pending_per_account=2)
        is Admission.EXISTS
    )

    running = await store.get_conversion(acct.id, "c1")
    assert running is not None
    running = await store.update_conversion(
        dataclasses.replace(running, status=ConversionStatus.RUNNING, started_at=T0, attempts=1)
    )
    assert (
        await store.insert_conversion(conversion(acct.id, "c3"), max_pending_per_account=2)
        is Admission.OVER_QUOTA
    )
    await store.update_conversion(dataclasses.replace(running, status=ConversionStatus.FAILED, ended_at=T0))
    assert (
        await store.insert_conversion(conversion(acct.id, "c3"), max_pending_per_account=2)
        is Admission.INSERTED
    )
    other = make_account()
    await store.add_account(other)
    assert (
        await store.insert_conversion(conversion(other.id, "c1"), max_pending_per_account=2)
        is Admission.INSERTED
    )


async def test_racing_creates_never_exceed_the_limit(store: SqlStore, backend_url: str) -> None:
    mine = make_account()
    await store.add_account(mine)
    replicas = [await open_store(backend_url), await open_store(backend_url)]
    try:
        got = await asyncio.gather(
            *(
                replicas[i % 2].insert_conversion(conversion(mine.id, f"c{i:02}"), max_pending_per_account=5)
                for i in range(40)
            )
        )
    finally:
        for replica in replicas:
            await replica.close()
    assert Counter(got) == {Admission.INSERTED: 5, Admission.OVER_QUOTA: 35}, Counter(got)
    assert len(await store.list_conversions(mine.id, limit=100)) == 5
