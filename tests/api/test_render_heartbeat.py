"""The render servers' heartbeat callback and the lease they learn from it (``protocol.handshake``, "Lease"),
and what a control plane records for a render server that stopped itself."""

from __future__ import annotations

import datetime as dt

import httpx

from openrr.domain.clock import ManualClock
from openrr.domain.session import Status
from openrr.protocol.handshake import CONTROL_PLANE_UNREACHABLE, HEARTBEAT_SUFFIX, LEASE_ENDED, ReadyReport
from openrr.services.runtime import Runtime
from tests.conftest import Account
from tests.fakes import FakeHost

V = {"api-version": "2021-01-01"}


async def put(client: httpx.AsyncClient, account: Account, sid: str, lease: int = 30) -> None:
    resp = await client.put(
        f"/accounts/{account.id}/sessions/{sid}",
        params=V,
        json={"maxLeaseTimeMinutes": lease, "size": "Standard"},
        headers=account.auth,
    )
    assert resp.status_code == 201, resp.text


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_the_spec_carries_the_lease_and_the_ready_answer_its_end(
    client: httpx.AsyncClient, account: Account, fake_host: FakeHost, clock: ManualClock
) -> None:
    fake_host.auto_ready = False
    await put(client, account, "s1", lease=7)
    spec = fake_host.server("s1").spec
    assert spec.lease_minutes == 7
    assert spec.settings.heartbeat_s == 10.0
    assert spec.settings.control_plane_grace_s == 600.0
    path = f"/internal/render/{account.id}/s1"
    beat = await client.post(
        path + HEARTBEAT_SUFFIX, json={"instance": spec.instance}, headers=bearer(spec.callback_token)
    )
    # Not ready yet: the lease has not started.
    assert beat.status_code == 200
    assert beat.json() == {"status": "Starting", "leaseRemainingSeconds": None}
    report = ReadyReport(spec.instance, "127.0.0.1", 50000, 50001, 1.0, 1).to_json()
    ready = await client.post(path + "/ready", json=report, headers=bearer(spec.callback_token))
    assert ready.status_code == 200
    assert ready.json() == {"status": "Ready", "leaseRemainingSeconds": 7 * 60.0}


async def test_heartbeats_carry_the_current_lease_renewals_included(
    client: httpx.AsyncClient, account: Account, fake_host: FakeHost, clock: ManualClock
) -> None:
    await put(client, account, "s1", lease=10)
    await fake_host.settle()
    spec = fake_host.server("s1").spec
    url = f"/internal/render/{account.id}/s1{HEARTBEAT_SUFFIX}"

    async def beat() -> httpx.Response:
        return await client.post(url, json={"instance": spec.instance}, headers=bearer(spec.callback_token))

    first = await beat()
    assert first.status_code == 200
    assert first.json() == {"status": "Ready", "leaseRemainingSeconds": 600.0}
    clock.advance(minutes=4)
    assert (await beat()).json()["leaseRemainingSeconds"] == 360.0
    renewed = await client.patch(
        f"/accounts/{account.id}/sessions/s1",
        params=V,
        json={"maxLeaseTimeMinutes": 20},
        headers=account.auth,
    )
    assert renewed.status_code == 200, renewed.text
    assert (await beat()).json()["leaseRemainingSeconds"] == 16 * 60.0
    clock.advance(minutes=30)  # past the end, before the reaper's pass: 0, never negative
    assert (await beat()).json()["leaseRemainingSeconds"] == 0.0


async def test_only_the_sessions_own_server_may_heartbeat(
    client: httpx.AsyncClient, account: Account, fake_host: FakeHost, runtime: Runtime
) -> None:
    await put(client, account, "s1")
    await fake_host.settle()
    spec = fake_host.server("s1").spec
    url = f"/internal/render/{account.id}/s1{HEARTBEAT_SUFFIX}"
    body = {"instance": spec.instance}
    assert (await client.post(url, json=body)).status_code == 401
    assert (
        await client.post(url, json=body, headers=account.auth)
    ).status_code == 401  # no render credential
    other = runtime.tokens.issue_render_token(account.id, "s2", dt.timedelta(hours=1))
    assert (await client.post(url, json=body, headers=bearer(other))).status_code == 403
    token = spec.callback_token
    wrong = await client.post(url, json={"instance": "another-instance"}, headers=bearer(token))
    assert wrong.status_code == 409  # a stale server: it exits
    too_long = await client.post(url, json={"instance": "x" * 65}, headers=bearer(token))
    assert too_long.status_code == 400
    assert (await client.post(url, content=b"{", headers=bearer(token))).status_code == 400
    # A session that does not exist (a credential for it, say from a purged session): 404, the server exits.
    ghost = runtime.tokens.issue_render_token(account.id, "ghost", dt.timedelta(hours=1))
    gone = await client.post(
        f"/internal/render/{account.id}/ghost{HEARTBEAT_SUFFIX}", json=body, headers=bearer(ghost)
    )
    assert gone.status_code == 404
    assert (await client.post(url, json=body, headers=bearer(token))).status_code == 200
    # Once the session ended: 409, and the server exits.
    await client.post(f"/accounts/{account.id}/sessions/s1/:stop", params=V, headers=account.auth)
    assert (await client.post(url, json=body, headers=bearer(token))).status_code == 409


async def test_a_restarted_control_plane_records_why_servers_stopped_themselves(
    account: Account, client: httpx.AsyncClient, fake_host: FakeHost, runtime: Runtime, clock: ManualClock
) -> None:
    for sid in ("lease", "early", "lost", "crashed"):
        await put(client, account, sid, lease=5)
    await fake_host.settle()
    await runtime.close()  # the control plane goes away
    # While it is away: one server's lease ends; another's ends by its own clock a moment before ours;
    # one gives up on the control plane; one crashes.
    fake_host.crash("lease", "The render server exited with code 6.", reason=LEASE_ENDED)
    fake_host.crash("early", "The render server exited with code 6.", reason=LEASE_ENDED)
    fake_host.crash("lost", "The render server exited with code 7.", reason=CONTROL_PLANE_UNREACHABLE)
    fake_host.crash("crashed")
    reborn = await Runtime.open(runtime.settings, host=fake_host, clock=clock)
    fake_host.attach(reborn.sessions)
    try:
        await reborn.sessions.update_lease(account.id, "early", 10)
        await reborn.sessions.update_lease(account.id, "lost", 10)
        await reborn.sessions.update_lease(account.id, "crashed", 10)
        clock.advance(minutes=5)
        await reborn.sessions.adopt_all()
        got = {
            sid: await reborn.sessions.get(account.id, sid) for sid in ("lease", "early", "lost", "crashed")
        }
        assert {sid: s.status for sid, s in got.items()} == {
            "lease": Status.EXPIRED,
            "early": Status.EXPIRED,
            "lost": Status.ERROR,
            "crashed": Status.ERROR,
        }
        for sid in ("lease", "early"):
            error = got[sid].error
            assert error is not None
            assert error.code == LEASE_ENDED
            assert "stopped itself" in error.message
            assert "lease" in error.message
        lost = got["lost"].error
        assert lost is not None
        assert lost.code == CONTROL_PLANE_UNREACHABLE
        assert "stopped itself" in lost.message
        assert "control plane was unreachable" in lost.message
        assert "code 7" in lost.message
        crashed = got["crashed"].error
        assert crashed is not None
        assert crashed.code == "RenderServerExited"
    finally:
        await reborn.close()
