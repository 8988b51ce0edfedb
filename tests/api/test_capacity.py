"""Capacity, quotas, the lease cap, idle stop, the warm pool, the reaper lease and the cluster endpoint,
through the API with a fake host (the Ray and local hosts have their own tests)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from openrr.api.app import create_app
from openrr.config.settings import Settings
from openrr.domain.clock import ManualClock
from openrr.domain.session import Size
from openrr.services.runtime import REAPER_LEASE, Runtime
from tests.conftest import Account
from tests.fakes import FakeHost

V = {"api-version": "2021-01-01"}


async def _client(rt: Runtime) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(rt)), base_url="https://openrr.test"
    )


async def _account(rt: Runtime) -> Account:
    created = await rt.accounts.create("capacity")
    token, _ = rt.tokens.issue_account_token(created.account_id)
    return Account(created.account_id, created.primary_key, token)


async def _put(
    c: httpx.AsyncClient, acc: Account, sid: str, size: str = "Standard", lease: int = 30
) -> httpx.Response:
    return await c.put(
        f"/accounts/{acc.id}/sessions/{sid}",
        params=V,
        json={"maxLeaseTimeMinutes": lease, "size": size},
        headers=acc.auth,
    )


@pytest.fixture
async def opened(
    settings_factory: Callable[..., Settings], store_url: str, clock: ManualClock
) -> AsyncIterator[Callable[..., object]]:
    runtimes: list[Runtime] = []
    clients: list[httpx.AsyncClient] = []

    async def open_runtime(host: FakeHost, **settings: object) -> tuple[Runtime, httpx.AsyncClient, Account]:
        rt = await Runtime.open(settings_factory(store_url=store_url, **settings), host=host, clock=clock)
        host.attach(rt.sessions)
        runtimes.append(rt)
        clients.append(await _client(rt))
        return rt, clients[-1], await _account(rt)

    yield open_runtime
    for client in clients:
        await client.aclose()
    for rt in runtimes:
        await rt.close()


async def test_capacity_exhausted_is_a_503_with_retry_after_and_frees_on_stop(opened) -> None:  # type: ignore[no-untyped-def]
    host = FakeHost(slots={"standard": 2, "premium": 0})
    rt, c, acc = await opened(host)
    assert (await _put(c, acc, "a")).status_code == 201
    assert (await _put(c, acc, "b")).status_code == 201
    full = await _put(c, acc, "c")
    assert full.status_code == 503
    assert full.json()["error"]["code"] == "CapacityExhausted"
    assert "All 2 Standard render servers are in use" in full.json()["error"]["message"]
    assert full.headers["Retry-After"] == "10"
    none = await _put(c, acc, "p", size="Premium")
    assert none.status_code == 503
    assert "no Premium render servers" in none.json()["error"]["message"]
    # A repeat of an existing session is never refused for capacity.
    assert (await _put(c, acc, "a")).status_code == 200
    # The refused ids were not stored: they can be created once there is room.
    assert (await c.get(f"/accounts/{acc.id}/sessions/c", params=V, headers=acc.auth)).status_code == 404
    assert (
        await c.post(f"/accounts/{acc.id}/sessions/a/:stop", params=V, headers=acc.auth)
    ).status_code == 204
    await rt.sessions.drain()  # the slot is free once the render server is released
    assert (await _put(c, acc, "c")).status_code == 201
    assert host.peak_live["standard"] == 2


async def test_capacity_error_in_v1_problem_details(opened) -> None:  # type: ignore[no-untyped-def]
    host = FakeHost(slots={"standard": 1})
    _rt, c, acc = await opened(host)
    url = f"/v1/accounts/{acc.id}/sessions/create"
    body = {"maxLeaseTime": "1:0:0", "size": "standard"}
    assert (await c.post(url, json=body, headers=acc.auth)).status_code == 202
    full = await c.post(url, json=body, headers=acc.auth)
    assert full.status_code == 503
    problem = full.json()
    assert problem["status"] == 503
    assert "render servers are in use" in problem["title"]


async def test_account_quota_is_a_403_and_counts_every_size(opened) -> None:  # type: ignore[no-untyped-def]
    host = FakeHost()
    rt, c, acc = await opened(host, max_sessions_per_account=2)
    other = await _account(rt)
    assert (await _put(c, acc, "a")).status_code == 201
    assert (await _put(c, acc, "b", size="Premium")).status_code == 201
    over = await _put(c, acc, "c")
    assert over.status_code == 403
    assert over.json()["error"]["code"] == "QuotaExceeded"
    assert "Retry-After" not in over.headers  # the SDK would retry any 4xx that carries it
    assert (await _put(c, other, "c")).status_code == 201  # quotas are per account
    assert (await _put(c, acc, "a")).status_code == 200  # an idempotent repeat is not a new session
    await c.post(f"/accounts/{acc.id}/sessions/b/:stop", params=V, headers=acc.auth)
    await rt.sessions.drain()
    assert (await _put(c, acc, "c")).status_code == 201


async def test_lease_cap_applies_to_create_and_renewals(opened) -> None:  # type: ignore[no-untyped-def]
    _rt, c, acc = await opened(FakeHost(), max_lease_minutes=60)
    too_long = await _put(c, acc, "a", lease=61)
    assert too_long.status_code == 400
    assert "cannot be larger than 60 on this service" in too_long.json()["error"]["message"]
    assert (await _put(c, acc, "a", lease=30)).status_code == 201
    url = f"/accounts/{acc.id}/sessions/a"
    assert (
        await c.patch(url, params=V, json={"maxLeaseTimeMinutes": 60}, headers=acc.auth)
    ).status_code == 200
    renewal = await c.patch(url, params=V, json={"maxLeaseTimeMinutes": 61}, headers=acc.auth)
    assert renewal.status_code == 422
    assert "60 on this service" in renewal.json()["error"]["message"]


async def test_idle_report_stops_the_session_with_the_reason(opened) -> None:  # type: ignore[no-untyped-def]
    host = FakeHost()
    rt, c, acc = await opened(host, idle_stop_minutes=10)
    assert (await _put(c, acc, "a")).status_code == 201
    await host.settle()
    spec = host.server("a").spec
    assert spec.settings.idle_stop_s == 600  # the render server is told
    idle_url = f"/internal/render/{acc.id}/a/idle"
    auth = {"Authorization": f"Bearer {spec.callback_token}"}
    stale = await c.post(idle_url, json={"instance": "someone-else", "idleSeconds": 600}, headers=auth)
    assert stale.status_code == 409
    bad = await c.post(idle_url, json={"instance": spec.instance, "idleSeconds": "long"}, headers=auth)
    assert bad.status_code == 400
    ok = await c.post(idle_url, json={"instance": spec.instance, "idleSeconds": 600.5}, headers=auth)
    assert ok.status_code == 200
    assert ok.json()["status"] == "Stopped"
    body = (await c.get(f"/accounts/{acc.id}/sessions/a", params=V, headers=acc.auth)).json()
    assert body["status"] == "Stopped"
    assert body["error"]["code"] == "IdleTimeout"
    assert "no client connected" in body["error"]["message"]
    v1 = await c.get(f"/v1/accounts/{acc.id}/sessions/a/properties", headers=acc.auth)
    assert "no client connected" in v1.json()["message"]
    await rt.sessions.drain()
    assert host.server("a").stopped
    # A second report changes nothing.
    again = await c.post(idle_url, json={"instance": spec.instance, "idleSeconds": 700}, headers=auth)
    assert again.status_code == 200
    assert again.json()["status"] == "Stopped"


async def test_warm_pool_serves_creates_and_refills_within_capacity(opened) -> None:  # type: ignore[no-untyped-def]
    host = FakeHost(slots={"standard": 3})
    rt, c, acc = await opened(host, warm_pool=("standard=2",))
    assert rt.pool is not None
    await rt.pool.fill()
    assert host.idle_starts == 2
    assert host.live("standard") == 2
    assert (await _put(c, acc, "a")).status_code == 201
    await host.settle()
    assert host.assigns == 1
    assert host.cold_starts == 0
    body = (await c.get(f"/accounts/{acc.id}/sessions/a", params=V, headers=acc.auth)).json()
    assert body["status"] == "Ready"
    # One session and one pooled server: one slot left, so one refill, not two.
    await rt.pool.fill()
    assert host.idle_starts == 3
    assert host.live("standard") == 3
    # Every slot is held; the sessions take the pooled servers, then capacity refuses.
    assert (await _put(c, acc, "b")).status_code == 201
    assert (await _put(c, acc, "c")).status_code == 201
    assert (await _put(c, acc, "d")).status_code == 503
    await host.settle()
    assert host.assigns == 3
    assert host.cold_starts == 0
    assert host.peak_live["standard"] == 3
    state = {s.size: s for s in rt.pool.states()}[Size.STANDARD.value]
    assert (state.target, state.idle, state.taken) == (2, 0, 3)


async def test_a_dead_pooled_server_is_replaced_and_a_failed_assign_starts_cold(opened) -> None:  # type: ignore[no-untyped-def]
    host = FakeHost()
    rt, c, acc = await opened(host, warm_pool=("standard=1",))
    assert rt.pool is not None
    await rt.pool.fill()
    (pooled,) = host.pooled()
    host.crash_handle({"kind": "fake", "key": next(k for k, s in host.servers.items() if s is pooled)})
    await rt.pool.fill()  # notices the death, stops it, starts another
    waiting = [server for server in host.pooled() if not server.stopped]
    assert host.idle_starts == 2
    assert len(waiting) == 1
    # A pooled server that dies between take and assign: the create still succeeds, cold.
    (pooled,) = waiting
    host.crash_handle({"kind": "fake", "key": next(k for k, s in host.servers.items() if s is pooled)})
    assert (await _put(c, acc, "a")).status_code == 201
    await host.settle()
    assert host.cold_starts == 1
    body = (await c.get(f"/accounts/{acc.id}/sessions/a", params=V, headers=acc.auth)).json()
    assert body["status"] == "Ready"


async def test_pool_servers_are_stopped_when_the_control_plane_closes(
    settings_factory: Callable[..., Settings], store_url: str, clock: ManualClock
) -> None:
    host = FakeHost()
    rt = await Runtime.open(
        settings_factory(store_url=store_url, warm_pool=("premium=2",)), host=host, clock=clock
    )
    host.attach(rt.sessions)
    assert rt.pool is not None
    await rt.pool.fill()
    assert len(host.pooled()) == 2
    await rt.close()
    assert all(server.stopped for server in host.servers.values())


async def test_one_reaper_among_replicas_and_takeover_on_close(
    settings_factory: Callable[..., Settings], store_url: str, clock: ManualClock
) -> None:
    first = await Runtime.open(
        settings_factory(store_url=store_url, reaper_interval=0.05), host=FakeHost(), clock=clock
    )
    second = await Runtime.open(
        settings_factory(store_url=store_url, reaper_interval=0.05), host=FakeHost(), clock=clock
    )
    try:
        await first.start_background()
        await asyncio.sleep(0.3)
        await second.start_background()
        await asyncio.sleep(0.3)
        assert await first.store.lease_holder(REAPER_LEASE, clock.now()) == first.replica_id
        await first.close()  # releases the lease: the other replica takes over at its next pass
        for _ in range(100):
            if await second.store.lease_holder(REAPER_LEASE, clock.now()) == second.replica_id:
                break
            await asyncio.sleep(0.05)
        assert await second.store.lease_holder(REAPER_LEASE, clock.now()) == second.replica_id
        # While it is held, nobody else gets it (expiry and takeover are in tests/store/test_leases.py).
        ttl = dt.timedelta(seconds=10)
        assert not await second.store.try_lease(REAPER_LEASE, "another", ttl, clock.now())
    finally:
        await second.close()


async def test_cluster_endpoint_needs_an_operator_token(opened) -> None:  # type: ignore[no-untyped-def]
    host = FakeHost(slots={"standard": 4})
    rt, c, acc = await opened(host, warm_pool=("standard=1",))
    assert rt.pool is not None
    await rt.pool.fill()
    assert (await _put(c, acc, "a")).status_code == 201
    assert (
        await c.get("/openrr/cluster", headers=acc.auth)
    ).status_code == 401  # an account token is not enough
    assert (await c.get("/openrr/cluster")).status_code == 401
    resp = await c.get(
        "/openrr/cluster", headers={"Authorization": f"Bearer {rt.tokens.issue_operator_token()}"}
    )
    assert resp.status_code == 200
    data = resp.json()
    assert data["host"] == "fake"
    assert data["replica"] == rt.replica_id
    standard = next(s for s in data["sizes"] if s["size"] == "Standard")
    assert standard["total"] == 4
    assert standard["sessions"] == 1
    assert standard["pool"]["target"] == 1
    assert standard["pool"]["taken"] == 1
    premium = next(s for s in data["sizes"] if s["size"] == "Premium")
    assert premium["total"] is None  # unlimited
