"""The v1 API with the seed document's own example requests (shared/reference/seeds/000_*.txt)."""

from __future__ import annotations

import re

import httpx
import pytest

from openrr.domain.clock import ManualClock
from openrr.services.runtime import Runtime
from tests.conftest import Account
from tests.fakes import FakeHost

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# The seed's PowerShell sends single-quoted pseudo-JSON; these are the same bodies as JSON.
SEED_CREATE = {"maxLeaseTime": "4:0:0", "models": [], "size": "standard"}
SEED_UPDATE = {"maxLeaseTime": "5:0:0"}


async def create(
    client: httpx.AsyncClient, account: Account, body: object = SEED_CREATE, slash: str = ""
) -> str:
    resp = await client.post(
        f"/v1/accounts/{account.id}/sessions/create{slash}", json=body, headers=account.auth
    )
    assert resp.status_code == 202, resp.text
    assert list(resp.json()) == ["sessionId"]
    sid = resp.json()["sessionId"]
    assert UUID.fullmatch(sid)
    assert resp.headers["location"] == f"/v1/accounts/{account.id}/sessions/{sid}"
    assert re.fullmatch(r"[A-Za-z0-9+/]{22}\.0", resp.headers["ms-cv"])
    return str(sid)


async def test_seed_walkthrough(
    client: httpx.AsyncClient, account: Account, fake_host: FakeHost, runtime: Runtime, clock: ManualClock
) -> None:
    sid = await create(client, account)
    await fake_host.settle()
    clock.advance(1)
    resp = await client.get(f"/v1/accounts/{account.id}/sessions/{sid}/properties", headers=account.auth)
    assert resp.status_code == 200
    body = resp.json()
    assert list(body)[:7] == [
        "message",
        "sessionElapsedTime",
        "sessionHostname",
        "sessionId",
        "sessionMaxLeaseTime",
        "sessionSize",
        "sessionStatus",
    ]
    assert body["message"] is None and body["sessionElapsedTime"] == "00:00:01"
    assert body["sessionMaxLeaseTime"] == "04:00:00" and body["sessionStatus"] == "Ready"
    assert body["sessionSize"] == "Standard" and body["sessionHostname"] == "render.test"
    assert body["handshakePort"] > 0 and body["arrInspectorPort"] > 0

    resp = await client.patch(
        f"/v1/accounts/{account.id}/sessions/{sid}", json=SEED_UPDATE, headers=account.auth
    )
    assert resp.status_code == 200 and resp.content == b""
    props = (
        await client.get(f"/v1/accounts/{account.id}/sessions/{sid}/properties", headers=account.auth)
    ).json()
    assert props["sessionMaxLeaseTime"] == "05:00:00"

    resp = await client.get(f"/v1/accounts/{account.id}/sessions", headers=account.auth)
    assert resp.status_code == 200 and [s["sessionId"] for s in resp.json()["sessions"]] == [sid]

    resp = await client.delete(f"/v1/accounts/{account.id}/sessions/{sid}", headers=account.auth)
    assert resp.status_code == 204 and resp.content == b""
    assert (await client.get(f"/v1/accounts/{account.id}/sessions", headers=account.auth)).json() == {
        "sessions": []
    }
    props = (
        await client.get(f"/v1/accounts/{account.id}/sessions/{sid}/properties/", headers=account.auth)
    ).json()
    assert props["sessionStatus"] == "Stopped" and props["sessionHostname"] == ""


async def test_keys_any_case_unknown_keys_ignored_models_reach_the_render_server(
    client: httpx.AsyncClient, account: Account, fake_host: FakeHost
) -> None:
    body = {
        "MAXLEASETIME": "04:00:00",
        "Size": "PREMIUM",
        "Models": ["https://assets.test/a.glb"],
        "directConnectionSession": "false",
    }
    sid = await create(client, account, body, slash="/")
    assert fake_host.server(sid).spec.models == ("https://assets.test/a.glb",)
    assert fake_host.server(sid).spec.size == "Premium"


async def test_v1_sessions_are_visible_to_the_2021_api(client: httpx.AsyncClient, account: Account) -> None:
    sid = await create(client, account)
    resp = await client.get(
        f"/accounts/{account.id}/sessions/{sid}", params={"api-version": "2021-01-01"}, headers=account.auth
    )
    assert resp.json()["maxLeaseTimeMinutes"] == 240


async def test_expired_and_error_sessions_explain_in_message(
    client: httpx.AsyncClient, account: Account, fake_host: FakeHost, runtime: Runtime, clock: ManualClock
) -> None:
    expiring = await create(client, account, {"maxLeaseTime": "0:1:0", "size": "standard"})
    crashing = await create(client, account)
    await fake_host.settle()
    fake_host.crash(crashing, "The render server was killed by signal SIGKILL.")
    clock.advance(61)
    await runtime.sessions.tick()
    props = (
        await client.get(f"/v1/accounts/{account.id}/sessions/{expiring}/properties", headers=account.auth)
    ).json()
    assert props["sessionStatus"] == "Expired" and "expired" in props["message"]
    assert props["sessionElapsedTime"] == "00:01:01"
    props = (
        await client.get(f"/v1/accounts/{account.id}/sessions/{crashing}/properties", headers=account.auth)
    ).json()
    assert props["sessionStatus"] == "Error" and "SIGKILL" in props["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"size": "standard"}, "maxLeaseTime"),
        ({"maxLeaseTime": "4:0:0"}, "size"),
        ({"maxLeaseTime": "four hours", "size": "standard"}, "maxLeaseTime"),
        ({"maxLeaseTime": 240, "size": "standard"}, "maxLeaseTime"),
        ({"maxLeaseTime": "4:0:0", "size": "gigantic"}, "size"),
        ({"maxLeaseTime": "4:0:0", "size": "standard", "models": "a.glb"}, "models"),
        ({"maxLeaseTime": "2.00:00:00", "size": "standard"}, "maxLeaseTimeMinutes"),
    ],
)
async def test_v1_validation_errors_are_problem_details(
    client: httpx.AsyncClient, account: Account, body: dict[str, object], field: str
) -> None:
    resp = await client.post(f"/v1/accounts/{account.id}/sessions/create", json=body, headers=account.auth)
    assert resp.status_code == 400
    problem = resp.json()
    assert problem["status"] == 400 and problem["title"] and field in problem["errors"]
    assert (await client.get(f"/v1/accounts/{account.id}/sessions", headers=account.auth)).json() == {
        "sessions": []
    }


async def test_v1_errors(client: httpx.AsyncClient, account: Account, other_account: Account) -> None:
    base = f"/v1/accounts/{account.id}/sessions"
    assert (
        await client.post(f"{base}/create", content=b"{'single': 'quotes'", headers=account.auth)
    ).status_code == 400
    assert (await client.get(f"{base}/nope/properties", headers=account.auth)).status_code == 404
    assert (await client.delete(f"{base}/nope", headers=account.auth)).status_code == 404
    assert (await client.get(base, headers=other_account.auth)).status_code == 403
    resp = await client.get(base)
    assert resp.status_code == 401 and resp.json()["status"] == 401
    sid = await create(client, account)
    resp = await client.patch(f"{base}/{sid}", json={"maxLeaseTime": "1:0:0"}, headers=account.auth)
    assert resp.status_code == 422
