"""Leader leases on SQLite and PostgreSQL: one holder at a time, among tasks and among replicas."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
import sqlalchemy as sa

from openrr.store.sql import SqlStore, open_store
from openrr.store.tables import leases
from tests.store.helpers import T0

TTL = dt.timedelta(seconds=30)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


async def test_acquire_renew_refuse_expire_and_take_over(store: SqlStore) -> None:
    assert await store.lease_holder("reaper", at(0)) is None
    assert await store.try_lease("reaper", "replica-a", TTL, at(0)) is True
    assert await store.lease_holder("reaper", at(0)) == "replica-a"

    # another holder is refused while the lease is live, and changes nothing
    assert await store.try_lease("reaper", "replica-b", TTL, at(10)) is False
    assert await store.lease_holder("reaper", at(10)) == "replica-a"

    # a renewal pushes the expiry out: at 40 s the first lease would have expired, the renewed one has not
    assert await store.try_lease("reaper", "replica-a", TTL, at(20)) is True
    assert await store.try_lease("reaper", "replica-b", TTL, at(40)) is False
    assert await store.lease_holder("reaper", at(49.999)) == "replica-a"

    # expired (20 s + 30 s): nobody holds it, and the next one to ask takes it over
    assert await store.lease_holder("reaper", at(50)) is None
    assert await store.try_lease("reaper", "replica-b", TTL, at(50)) is True
    assert await store.lease_holder("reaper", at(50)) == "replica-b"
    assert await store.try_lease("reaper", "replica-a", TTL, at(60)) is False

    # other names are other leases
    assert await store.try_lease("conversions", "replica-a", TTL, at(60)) is True
    assert await store.lease_holder("conversions", at(60)) == "replica-a"
    assert await store.lease_holder("reaper", at(60)) == "replica-b"


async def test_a_renewal_keeps_acquired_at_and_a_takeover_resets_it(store: SqlStore) -> None:
    async def row() -> tuple[str, dt.datetime, dt.datetime]:
        async with store._engine.connect() as conn:
            r = (await conn.execute(sa.select(leases).where(leases.c.name == "reaper"))).one()
        # SQLite hands datetimes back naive; they are UTC
        return r.holder, r.acquired_at.replace(tzinfo=dt.UTC), r.expires_at.replace(tzinfo=dt.UTC)

    assert await store.try_lease("reaper", "a", TTL, at(0))
    assert await store.try_lease("reaper", "a", TTL, at(25))
    assert await row() == ("a", at(0), at(55))
    assert await store.try_lease("reaper", "b", TTL, at(55))
    assert await row() == ("b", at(55), at(85))


async def test_release(store: SqlStore) -> None:
    assert await store.try_lease("reaper", "a", TTL, at(0))
    # only the holder can release it
    await store.release_lease("reaper", "b")
    assert await store.lease_holder("reaper", at(1)) == "a"
    assert await store.try_lease("reaper", "b", TTL, at(1)) is False

    await store.release_lease("reaper", "a")
    assert await store.lease_holder("reaper", at(2)) is None
    # released: another replica takes it at once, without waiting for the expiry
    assert await store.try_lease("reaper", "b", TTL, at(2)) is True
    await store.release_lease("reaper", "a")  # no longer a's: nothing happens
    assert await store.lease_holder("reaper", at(3)) == "b"
    await store.release_lease("never-taken", "a")


async def test_times_in_other_zones_mean_the_same_instant(store: SqlStore) -> None:
    zone = dt.timezone(dt.timedelta(hours=-5))
    assert await store.try_lease("reaper", "a", TTL, at(0).astimezone(zone))
    assert await store.try_lease("reaper", "b", TTL, at(29).astimezone(zone)) is False
    assert await store.lease_holder("reaper", at(29)) == "a"
    assert await store.lease_holder("reaper", at(30).astimezone(zone)) is None


async def test_a_lease_needs_a_positive_ttl(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="positive ttl"):
        await store.try_lease("reaper", "a", dt.timedelta(0), at(0))
    assert await store.lease_holder("reaper", at(0)) is None


async def test_racing_tasks_have_one_winner(store: SqlStore) -> None:
    got = await asyncio.gather(*(store.try_lease("reaper", f"h{i}", TTL, at(0)) for i in range(20)))
    assert got.count(True) == 1, got
    winner = f"h{got.index(True)}"
    assert await store.lease_holder("reaper", at(0)) == winner


async def test_racing_replicas_have_one_winner(backend_url: str) -> None:
    """Three replicas (each its own engine and connection pool), several tasks each, racing for a new lease
    and then for one that expired: exactly one holder each time."""
    replicas = [await open_store(backend_url) for _ in range(3)]
    try:
        for round_ in range(5):
            name = f"job-{round_}"
            for when, label in ((at(0), "fresh"), (at(100), "expired")):
                attempts = [
                    (f"r{r}t{t}", replica.try_lease(name, f"r{r}t{t}-{label}", TTL, when))
                    for r, replica in enumerate(replicas)
                    for t in range(5)
                ]
                got = await asyncio.gather(*(a for _, a in attempts))
                assert got.count(True) == 1, (round_, label, got)
                winner = f"{attempts[got.index(True)][0]}-{label}"
                for replica in replicas:
                    assert await replica.lease_holder(name, when) == winner
    finally:
        for replica in replicas:
            await replica.close()
