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

# The seed's PowerShell sends single-quoted JSON, which ARR's JSON.NET read leniently; test_seed_requests_
# byte_for_byte sends those bytes. These are the same bodies as strict JSON, for the other tests.
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
    assert body["message"] is None
    assert body["sessionElapsedTime"] == "00:00:01"
    assert body["sessionMaxLeaseTime"] == "04:00:00"
    assert body["sessionStatus"] == "Ready"
    assert body["sessionSize"] == "Standard"
    assert body["sessionHostname"] == "render.test"
    assert body["handshakePort"] > 0
    assert body["arrInspectorPort"] > 0

    resp = await client.patch(
        f"/v1/accounts/{account.id}/sessions/{sid}", json=SEED_UPDATE, headers=account.auth
    )
    assert resp.status_code == 200
    assert resp.content == b""
    props = (
        await client.get(f"/v1/accounts/{account.id}/sessions/{sid}/properties", headers=account.auth)
    ).json()
    assert props["sessionMaxLeaseTime"] == "05:00:00"

    resp = await client.get(f"/v1/accounts/{account.id}/sessions", headers=account.auth)
    assert resp.status_code == 200
    assert [s["sessionId"] for s in resp.json()["sessions"]] == [sid]

    resp = await client.delete(f"/v1/accounts/{account.id}/sessions/{sid}", headers=account.auth)
    assert resp.status_code == 204
    assert resp.content == b""
    assert (await client.get(f"/v1/accounts/{account.id}/sessions", headers=account.auth)).json() == {
        "sessions": []
    }
    props = (
        await client.get(f"/v1/accounts/{account.id}/sessions/{sid}/properties/", headers=account.auth)
    ).json()
    assert props["sessionStatus"] == "Stopped"
    assert props["sessionHostname"] == ""


async def test_seed_requests_byte_for_byte(
    client: httpx.AsyncClient, account: Account, fake_host: FakeHost, clock: ManualClock
) -> None:
    """Every request of seed 000, with its exact method, path, headers and body bytes, in the seed's order."""
    json_type = {"Content-Type": "application/json"}
    resp = await client.get(
        f"/accounts/{account.id}/token",
        headers={**json_type, "Authorization": f"Bearer {account.id}:{account.key}"},
    )
    assert resp.status_code == 200, resp.text
    auth = {"Authorization": f"Bearer {resp.json()['AccessToken']}"}
    base = f"/v1/accounts/{account.id}/sessions"

    resp = await client.post(
        f"{base}/create",
        content=b"{ 'maxLeaseTime': '4:0:0', 'models': [], 'size': 'standard' }",
        headers={**json_type, **auth},
    )
    assert resp.status_code == 202, resp.text
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    assert re.fullmatch(rb'\{"sessionId":"[0-9a-f-]{36}"\}', resp.content)
    assert resp.headers["content-length"] == "52"
    assert re.fullmatch(r"[A-Za-z0-9+/]{22}\.0", resp.headers["ms-cv"])
    sid = resp.json()["sessionId"]
    await fake_host.settle()
    clock.advance(1)

    resp = await client.patch(
        f"{base}/{sid}", content=b"{ 'maxLeaseTime': '5:0:0' }", headers={**json_type, **auth}
    )
    assert resp.status_code == 200
    assert resp.content == b""
    assert resp.headers["content-length"] == "0"

    resp = await client.get(base, headers=auth)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    assert [s["sessionId"] for s in resp.json()["sessions"]] == [sid]

    resp = await client.get(f"{base}/{sid}/properties", headers=auth)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    props = resp.json()
    assert props["sessionStatus"] == "Ready"
    assert props["sessionMaxLeaseTime"] == "05:00:00"
    assert props["message"] is None
    assert props["sessionElapsedTime"] == "00:00:01"

    resp = await client.delete(f"{base}/{sid}", headers=auth)
    assert resp.status_code == 204
    assert resp.content == b""


@pytest.mark.parametrize(
    "raw",
    [
        # What JSON.NET read besides strict JSON, as real scripts write it.
        b"{maxLeaseTime: '4:0:0', size: 'standard'}",
        b"{ 'maxLeaseTime': '4:0:0', 'size': 'standard', }",
        b"// a comment\n{ 'maxLeaseTime': '4:0:0', /* inline */ 'size': \"standard\", 'models': [], }",
        b"\xef\xbb\xbf{ 'maxLeaseTime': '4:0:0', 'size': 'standard' }",
        b"{ 'MaxLeaseTime': '4:0:0', 'Size': 'Standard', 'models': null }",
    ],
)
async def test_v1_reads_bodies_as_leniently_as_json_net(
    client: httpx.AsyncClient, account: Account, raw: bytes
) -> None:
    resp = await client.post(
        f"/v1/accounts/{account.id}/sessions/create",
        content=raw,
        headers={"Content-Type": "application/json", **account.auth},
    )
    assert resp.status_code == 202, resp.text


@pytest.mark.parametrize(
    "raw",
    [b"{'single': 'quotes'", b"{ 'maxLeaseTime': }", b"\xff\xfe{}", b"[" * 100 + b"]" * 100, b"'text'"],
)
async def test_v1_refuses_what_even_json_net_could_not_read(
    client: httpx.AsyncClient, account: Account, raw: bytes
) -> None:
    base = f"/v1/accounts/{account.id}/sessions"
    resp = await client.post(f"{base}/create", content=raw, headers=account.auth)
    assert resp.status_code == 400
    problem = resp.json()
    assert problem["status"] == 400
    assert problem["title"]
    assert (await client.get(base, headers=account.auth)).json() == {"sessions": []}


async def test_the_2021_api_stays_strict_json(client: httpx.AsyncClient, account: Account) -> None:
    resp = await client.put(
        f"/accounts/{account.id}/sessions/strict",
        params={"api-version": "2021-01-01"},
        content=b"{ 'maxLeaseTimeMinutes': 30, 'size': 'Standard' }",
        headers={"Content-Type": "application/json", **account.auth},
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"]


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
    assert props["sessionStatus"] == "Expired"
    assert "expired" in props["message"]
    assert props["sessionElapsedTime"] == "00:01:01"
    props = (
        await client.get(f"/v1/accounts/{account.id}/sessions/{crashing}/properties", headers=account.auth)
    ).json()
    assert props["sessionStatus"] == "Error"
    assert "SIGKILL" in props["message"]


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
    assert problem["status"] == 400
    assert problem["title"]
    assert field in problem["errors"]
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
    assert resp.status_code == 401
    assert resp.json()["status"] == 401
    sid = await create(client, account)
    resp = await client.patch(f"{base}/{sid}", json={"maxLeaseTime": "1:0:0"}, headers=account.auth)
    assert resp.status_code == 422
