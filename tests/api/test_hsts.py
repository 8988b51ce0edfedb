"""Strict-Transport-Security on every HTTPS response of the control plane, and never over plain HTTP."""

from __future__ import annotations

import httpx

from openrr.api.app import create_app
from openrr.services.runtime import Runtime
from tests.conftest import Account


async def test_every_https_response_carries_hsts(client: httpx.AsyncClient, account: Account) -> None:
    sessions = f"/accounts/{account.id}/sessions"
    for resp in (
        await client.get("/health"),
        await client.get("/ui/index.html"),
        await client.get(sessions, params={"api-version": "2021-01-01"}, headers=account.auth),
        await client.get(sessions, params={"api-version": "2021-01-01"}),  # 401
        await client.get("/nothing-here"),  # 404
        await client.get(
            f"/accounts/{account.id}/token", headers={"Authorization": f"Bearer {account.id}:x"}
        ),
    ):
        assert resp.headers.get("strict-transport-security") == "max-age=31536000", (resp.url, resp.headers)


async def test_plain_http_responses_carry_no_hsts(runtime: Runtime) -> None:
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://openrr.test") as plain:
        resp = await plain.get("/health")
    assert resp.status_code == 200
    assert "strict-transport-security" not in resp.headers
