"""Session lifecycle through the API and the reaper: idempotent create, expiry, crashes, timeouts,
restarts, retention, throttling and paging."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from openrr.api.app import create_app
from openrr.config.settings import Settings
from openrr.domain.clock import ManualClock
from openrr.domain.session import Event, Status
from openrr.errors import Unprocessable
from openrr.protocol.handshake import ReadyReport
from openrr.services.runtime import Runtime
from tests.conftest import Account
from tests.fakes import FakeHost

V = {"api-version": "2021-01-01"}


async def put(
    client: httpx.AsyncClient, account: Account, sid: str, lease: int = 30, size: str = "Standard"
) -> httpx.Response:
    return await client.put(
        f"/accounts/{account.id}/sessions/{sid}",
        params=V,
        json={"maxLeaseTimeMinutes": lease, "size": size},
        headers=account.auth,
    )


async def get(client: httpx.AsyncClient, account: Account, sid: str) -> dict[str, Any]:
    resp = await client.get(f"/accounts/{account.id}/sessions/{sid}", params=V, headers=account.auth)
    assert resp.status_code == 200
    body: dict[str, Any] = resp.json()
    return body


async def test_create_is_idempotent_and_conflicts_on_other_settings(
    client: httpx.AsyncClient, account: Account, other_account: Account, fake_host: FakeHost
) -> None:
    assert (await put(client, account, "s1")).status_code == 201
    again = await put(client, account, "s1")
    assert again.status_code == 200
    assert again.json()["id"] == "s1"
    assert len(fake_host.servers) == 1  # the repeat started nothing
    for lease, size in ((31, "Standard"), (30, "Premium")):
        resp = await put(client, account, "s1", lease, size)
        assert resp.status_code == 409
        assert resp.json()["error"]["code"] == "Conflict"
    # ids are per account
    assert (await put(client, other_account, "s1")).status_code == 201
    # ids are case-sensitive
    assert (await put(client, account, "S1")).status_code == 201


async def test_lease_expiry_by_the_reaper(
    client: httpx.AsyncClient, account: Account, fake_host: FakeHost, runtime: Runtime, clock: ManualClock
) -> None:
    await put(client, account, "s1", lease=2)
    await fake_host.settle()
    clock.advance(minutes=1)
    resp = await client.patch(
        f"/accounts/{account.id}/sessions/s1", params=V, json={"maxLeaseTimeMinutes": 3}, headers=account.auth
    )
    assert resp.status_code == 200
    assert resp.json()["maxLeaseTimeMinutes"] == 3
    clock.advance(seconds=119)
    await runtime.sessions.tick()
    assert (await get(client, account, "s1"))["status"] == "Ready"
    clock.advance(seconds=1)
    await runtime.sessions.tick()
    body = await get(client, account, "s1")
    assert body["status"] == "Expired"
    assert body["elapsedTimeMinutes"] == 3
    assert "error" not in body
    await runtime.sessions.drain()
    assert fake_host.server("s1").stopped
    listed = await client.get(f"/accounts/{account.id}/sessions", params=V, headers=account.auth)
    assert listed.json() == {"sessions": []}
    resp = await client.patch(
        f"/accounts/{account.id}/sessions/s1",
        params=V,
        json={"maxLeaseTimeMinutes": 60},
        headers=account.auth,
    )
    assert resp.status_code == 422


async def test_zero_lease_expires_as_soon_as_ready(
    client: httpx.AsyncClient, account: Account, fake_host: FakeHost, runtime: Runtime
) -> None:
    await put(client, account, "s0", lease=0)
    await fake_host.settle()
    await runtime.sessions.tick()
    assert (await get(client, account, "s0"))["status"] == "Expired"


async def test_crash_after_ready_is_an_error_with_a_message(
    client: httpx.AsyncClient, account: Account, fake_host: FakeHost, runtime: Runtime
) -> None:
    await put(client, account, "s1")
    await fake_host.settle()
    fake_host.crash("s1", "The render server was killed by signal SIGKILL.")
    await runtime.sessions.tick()
    body = await get(client, account, "s1")
    assert body["status"] == "Error"
    assert body["error"] == {
        "code": "RenderServerExited",
        "message": "The render server was killed by signal SIGKILL.",
    }


async def test_start_failures(
    client: httpx.AsyncClient, account: Account, fake_host: FakeHost, runtime: Runtime, clock: ManualClock
) -> None:
    fake_host.fail_start = True
    body = (await put(client, account, "broken")).json()
    assert body["status"] == "Error"
    assert body["error"]["code"] == "RenderServerStartFailed"

    fake_host.fail_start, fake_host.auto_ready = False, False
    await put(client, account, "slow")
    clock.advance(runtime.settings.sessions.start_timeout - 1)
    await runtime.sessions.tick()
    assert (await get(client, account, "slow"))["status"] == "Starting"
    clock.advance(2)
    await runtime.sessions.tick()
    body = await get(client, account, "slow")
    assert body["status"] == "Error"
    assert body["error"]["code"] == "RenderServerStartTimeout"
    await runtime.sessions.drain()
    assert fake_host.server("slow").stopped


async def test_stop_is_idempotent_and_stops_a_starting_session(
    client: httpx.AsyncClient, account: Account, fake_host: FakeHost, runtime: Runtime
) -> None:
    fake_host.auto_ready = False
    await put(client, account, "s1")
    for _ in range(2):
        resp = await client.post(f"/accounts/{account.id}/sessions/s1/:stop", params=V, headers=account.auth)
        assert resp.status_code == 204
    await runtime.sessions.drain()
    assert fake_host.server("s1").stopped
    session = await runtime.sessions.get(account.id, "s1")
    assert session.status is Status.STOPPED
    assert session.host_released


async def test_callbacks_from_stale_or_foreign_render_servers_are_refused(
    client: httpx.AsyncClient, account: Account, fake_host: FakeHost, runtime: Runtime
) -> None:
    fake_host.auto_ready = False
    await put(client, account, "s1")
    spec = fake_host.server("s1").spec
    token = spec.callback_token
    body = ReadyReport("another-instance", "h", 50000, 50001, 1.0, 1).to_json()
    path = f"/internal/render/{account.id}/s1/ready"
    resp = await client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 409
    resp = await client.post(
        path, json=body, headers=account.auth
    )  # an account token is no render credential
    assert resp.status_code == 401
    other = runtime.tokens.issue_render_token(account.id, "s2", dt.timedelta(hours=1))
    resp = await client.post(path, json=body, headers={"Authorization": f"Bearer {other}"})
    assert resp.status_code == 403
    body["instance"] = spec.instance
    body["handshakePort"] = 80  # outside ARR's port range
    resp = await client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 400
    body["handshakePort"] = 50000
    for _ in range(2):  # a retried callback is fine
        resp = await client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 200
    assert (await get(client, account, "s1"))["status"] == "Ready"
    fail = {"instance": spec.instance, "code": "ModelLoadFailed", "message": "bad.glb is not a glTF file"}
    resp = await client.post(
        f"/internal/render/{account.id}/s1/failed", json=fail, headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status_code == 200
    body2 = await get(client, account, "s1")
    assert body2["status"] == "Error"
    assert body2["error"]["code"] == "ModelLoadFailed"


async def test_restart_adopts_running_servers_and_settles_the_rest(
    settings_factory: object,
    store_url: str,
    clock: ManualClock,
    account: Account,
    client: httpx.AsyncClient,
    fake_host: FakeHost,
    runtime: Runtime,
) -> None:
    for sid in ("keeps", "dies", "expires"):
        await put(client, account, sid, lease=5)
    await fake_host.settle()
    await runtime.close()  # the control plane goes away; its render servers do not
    fake_host.crash("dies")
    clock.advance(minutes=5)
    reborn = await Runtime.open(runtime.settings, host=fake_host, clock=clock)
    fake_host.attach(reborn.sessions)
    try:
        # All three are past their 5-minute lease now; only "expires" is left that way.
        await reborn.sessions.update_lease(account.id, "keeps", 10)
        await reborn.sessions.update_lease(account.id, "dies", 10)
        await reborn.sessions.adopt_all()
        statuses = {
            sid: (await reborn.sessions.get(account.id, sid)).status for sid in ("keeps", "dies", "expires")
        }
        assert statuses == {"keeps": Status.READY, "dies": Status.ERROR, "expires": Status.EXPIRED}
        assert all(s.adopted for s in fake_host.servers.values())
        await reborn.sessions.drain()
        assert not fake_host.server("keeps").stopped
        assert fake_host.server("expires").stopped
    finally:
        await reborn.close()


async def test_unreleased_servers_are_released_after_a_restart(
    account: Account, client: httpx.AsyncClient, fake_host: FakeHost, runtime: Runtime, clock: ManualClock
) -> None:
    await put(client, account, "s1")
    await fake_host.settle()
    session = await runtime.sessions.get(account.id, "s1")
    # Simulate a control plane that stored "Stopped" and died before it stopped the render server.
    stopped = session.apply(Event.STOP, clock.now())
    await runtime.store.update_session(stopped)
    assert not fake_host.server("s1").stopped
    await runtime.sessions.tick()
    await runtime.sessions.drain()
    assert fake_host.server("s1").stopped
    assert (await runtime.sessions.get(account.id, "s1")).host_released


async def test_ended_sessions_are_kept_for_the_retention_then_purged(
    account: Account, client: httpx.AsyncClient, fake_host: FakeHost, runtime: Runtime, clock: ManualClock
) -> None:
    await put(client, account, "old")
    await put(client, account, "live")
    await client.post(f"/accounts/{account.id}/sessions/old/:stop", params=V, headers=account.auth)
    await runtime.sessions.drain()
    clock.advance(minutes=30 * 24 * 60 - 1)
    assert await runtime.sessions.purge(dt.timedelta(days=30)) == 0
    assert (await runtime.sessions.get(account.id, "old")).status is Status.STOPPED
    clock.advance(minutes=2)
    assert await runtime.sessions.purge(dt.timedelta(days=30)) == 1
    assert await runtime.store.get_session(account.id, "old") is None
    assert (await runtime.sessions.get(account.id, "live")).status.active


@pytest.fixture
async def paged_client(
    settings_factory: object, store_url: str, fake_host: FakeHost, clock: ManualClock
) -> object:
    settings: Settings = settings_factory(store_url=store_url, list_page_size=2)  # type: ignore[operator]
    rt = await Runtime.open(settings, host=fake_host, clock=clock)
    fake_host.attach(rt.sessions)
    transport = httpx.ASGITransport(app=create_app(rt))
    async with httpx.AsyncClient(transport=transport, base_url="https://openrr.test") as c:
        yield c, rt
    await rt.close()


async def test_list_pages_with_next_link_and_hides_ended_sessions(
    paged_client: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, rt = paged_client
    created = await rt.accounts.create()
    token, _ = rt.tokens.issue_account_token(created.account_id)
    account = Account(created.account_id, created.primary_key, token)
    for i in range(5):
        await put(client, account, f"s{i}")
    await client.post(f"/accounts/{account.id}/sessions/s2/:stop", params=V, headers=account.auth)
    seen, pages = [], 0
    resp = await client.get(f"/accounts/{account.id}/sessions", params=V, headers=account.auth)
    while True:
        pages += 1
        page = resp.json()
        seen += [s["id"] for s in page["sessions"]]
        link = page.get("@nextLink")
        if link is None:
            break
        assert "api-version=2021-01-01" in link
        assert link.startswith("https://openrr.test/")
        resp = await client.get(link, headers=account.auth)  # followed verbatim, as the SDK does
    assert seen == ["s0", "s1", "s3", "s4"]
    assert pages == 2


async def test_data_plane_throttle(
    client: httpx.AsyncClient, account: Account, other_account: Account, runtime: Runtime, clock: ManualClock
) -> None:
    runtime.throttle.rate, runtime.throttle.burst = 0.2, 3
    path = f"/accounts/{account.id}/sessions"
    for _ in range(3):
        assert (await client.get(path, params=V, headers=account.auth)).status_code == 200
    resp = await client.get(path, params=V, headers=account.auth)
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "5"
    assert resp.json()["error"]["code"] == "TooManyRequests"
    other = f"/accounts/{other_account.id}/sessions"
    assert (await client.get(other, params=V, headers=other_account.auth)).status_code == 200
    clock.advance(5)
    assert (await client.get(path, params=V, headers=account.auth)).status_code == 200


async def test_a_stale_read_cache_never_wins_a_write(
    runtime: Runtime, account: Account, client: httpx.AsyncClient, fake_host: FakeHost, clock: ManualClock
) -> None:
    # A second control plane on the same store (as with several replicas): its cached copy goes stale.
    other = await Runtime.open(runtime.settings, host=fake_host, clock=clock)
    try:
        await put(client, account, "s1")
        await fake_host.settle()
        assert (await other.sessions.get(account.id, "s1")).status is Status.READY  # now cached there
        await runtime.sessions.stop(account.id, "s1")
        with pytest.raises(Unprocessable, match="Stopped"):
            await other.sessions.update_lease(account.id, "s1", 120)
        assert (await other.sessions.get(account.id, "s1")).status is Status.STOPPED
    finally:
        await other.close()
