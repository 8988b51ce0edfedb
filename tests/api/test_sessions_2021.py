"""The 2021-01-01 session API, in-process with a fake host: statuses, bodies and headers as ARR had them."""

from __future__ import annotations

import re

import httpx

from openrr.domain.clock import ManualClock
from openrr.services.runtime import Runtime
from tests.conftest import Account
from tests.fakes import FakeHost

V = {"api-version": "2021-01-01"}


def url(account: Account, session_id: str = "", suffix: str = "") -> str:
    base = f"/accounts/{account.id}/sessions"
    return f"{base}/{session_id}{suffix}" if session_id else base


async def test_create_answers_201_starting_without_endpoint_fields(
    client: httpx.AsyncClient, account: Account, fake_host: FakeHost
) -> None:
    fake_host.auto_ready = False
    resp = await client.put(
        url(account, "s1"),
        params=V,
        json={"maxLeaseTimeMinutes": 15, "size": "Standard"},
        headers=account.auth,
    )
    assert resp.status_code == 201
    body = resp.json()
    assert list(body) == ["id", "creationTime", "elapsedTimeMinutes", "maxLeaseTimeMinutes", "size", "status"]
    assert body["status"] == "Starting"
    assert body["maxLeaseTimeMinutes"] == 15
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    assert re.fullmatch(r"[A-Za-z0-9+/]{22}\.0", resp.headers["ms-cv"])
    assert resp.headers["api-supported-versions"] == "2021-01-01-preview, 2021-01-01"
    assert "retry-after" not in resp.headers


async def test_ready_session_shows_endpoint_then_stop_hides_it(
    client: httpx.AsyncClient, account: Account, fake_host: FakeHost, runtime: Runtime, clock: ManualClock
) -> None:
    await client.put(
        url(account, "s1"),
        params=V,
        json={"maxLeaseTimeMinutes": 15, "size": "Premium"},
        headers=account.auth,
    )
    await fake_host.settle()
    clock.advance(minutes=3, seconds=20)
    body = (await client.get(url(account, "s1"), params=V, headers=account.auth)).json()
    assert body["status"] == "Ready"
    assert list(body) == [
        "id",
        "creationTime",
        "arrInspectorPort",
        "handshakePort",
        "elapsedTimeMinutes",
        "hostname",
        "maxLeaseTimeMinutes",
        "size",
        "status",
        "teraflops",
    ]
    assert body["elapsedTimeMinutes"] == 3
    assert body["size"] == "Premium"
    resp = await client.post(url(account, "s1", "/:stop"), params=V, headers=account.auth)
    assert resp.status_code == 204
    assert resp.content == b""
    body = (await client.get(url(account, "s1"), params=V, headers=account.auth)).json()
    assert body["status"] == "Stopped"
    assert "hostname" not in body
    assert "handshakePort" not in body
    assert body["teraflops"] > 0
    await runtime.sessions.drain()
    assert fake_host.server("s1").stopped
